"""End to end: a real server with the extension, kernels it launches, restarts, closed clients.

The server runs the scripted `stepped` pipeline (tests/dr_testing/pipelines.py) so a task lasts
long enough to restart a kernel in the middle of it; everything else is the real product.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kernel_ws import KernelSession

from dr_testing.servers import ServerProcess
from jupyter_deepresearch.kernel_helpers import Backoff, ResearchClient

pytestmark = pytest.mark.slow

SETTINGS = {"pipeline": "dr_testing.pipelines:stepped", "flush_interval": 0.05}
UNITS = 40
QUERY = f"reattach units={UNITS} delay=0.2"

SUBMIT = f"""
import os, json
from jupyter_deepresearch.kernel_helpers import research
from jupyter_deepresearch.kernel_helpers._widget import ResearchWidget
widgets = lambda task: [w for w in task._listeners if isinstance(w, ResearchWidget)]
task = research({QUERY!r})
print(json.dumps({{"pid": os.getpid(), "task_id": task.task_id, "created": task.created,
                   "status": task.status}}))
"""
WAIT = """
report = task.wait(120)
print(json.dumps({"report": report, "attempts": task.refresh().attempts,
                  "last_event_id": task.last_event_id, "status": task.status,
                  "history": [e.id for e in task._history],
                  "widgets": [[w.state.status, w.progress.value, w.report_markdown]
                              for w in widgets(task)]}))
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "srv", tmp_path / "tasks", settings=SETTINGS).start()
    yield process
    process.stop()


@pytest.fixture
def kernel(server: ServerProcess) -> Iterator[KernelSession]:
    session = KernelSession(f"http://127.0.0.1:{server.port}/", server.token).start()
    yield session
    session.close()


def last_json(text: str) -> Any:
    return json.loads(text.strip().splitlines()[-1])


def stored_events(server: ServerProcess, task_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    with ResearchClient(f"http://127.0.0.1:{server.port}/", server.token) as client:
        return [(e.id, e.type, e.data) for e in client.events(task_id, follow=False)]


def wait_info(client: httpx.Client, task_id: str, ok: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    info: Any = None
    while time.monotonic() < deadline:
        info = client.get(f"tasks/{task_id}").json()
        if ok(info):
            return info
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s: {info}")


def test_rerunning_the_cell_after_a_kernel_restart_reattaches_to_the_same_task(
    server: ServerProcess, kernel: KernelSession
) -> None:
    first = last_json(kernel.run(SUBMIT).stdout)
    assert first["created"] is True
    task_id = first["task_id"]
    with server.client() as api:
        before = wait_info(api, task_id, lambda i: i["percentage"] >= 10)
    assert before["attempts"] == 1

    kernel.restart()
    second = last_json(kernel.run(SUBMIT).stdout)
    assert second["pid"] != first["pid"]  # really a new kernel process
    assert second["task_id"] == task_id
    assert second["created"] is False
    assert second["status"] in ("queued", "running")  # attached mid-task, not finished

    done = last_json(kernel.run(WAIT).stdout)
    assert done["status"] == "completed"
    assert done["attempts"] == 1  # the task was not run twice
    events = stored_events(server, task_id)
    ids = [event_id for event_id, _, _ in events]
    assert ids == list(range(1, len(ids) + 1))
    assert done["history"] == ids  # the new kernel saw every event once, ids continuing
    assert done["last_event_id"] == ids[-1]
    outputs = [data["text"] for _, kind, data in events if kind == "output"]
    assert outputs == [f"Unit {n} of {QUERY!r} done." for n in range(UNITS)]
    [result] = [data for _, kind, data in events if kind == "result"]
    assert done["report"] == result["report"]
    assert done["report"].count("done. [1]") == UNITS
    # The widget the cell showed in the new kernel filled in from the background thread...
    assert done["widgets"] == [["completed", 100, done["report"]]]
    # ...and those updates reached the front end's websocket as widget protocol messages.
    kernel.drain(1.0)
    updates = kernel.widget_updates()
    assert any(u.get("value") == 100 for u in updates)  # the progress bar
    shown = [u["outputs"][0]["data"]["text/markdown"] for u in updates if u.get("outputs")]
    assert shown[-1] == done["report"]
    assert any(">completed<" in str(u.get("value", "")) for u in updates)


def test_a_task_with_every_client_gone_completes_and_is_served_whole(
    server: ServerProcess, kernel: KernelSession
) -> None:
    started = last_json(kernel.run(SUBMIT).stdout)
    task_id = started["task_id"]
    with server.client() as api:
        wait_info(api, task_id, lambda i: i["percentage"] >= 10)
        kernel.shutdown()  # no kernel, no websocket, no SSE stream left
        assert kernel.http.get("api/kernels").json() == []
        mid = api.get(f"tasks/{task_id}").json()
        assert mid["status"] == "running"
        done = wait_info(api, task_id, lambda i: i["status"] == "completed", timeout=120)
    assert done["attempts"] == 1

    events = stored_events(server, task_id)
    ids = [event_id for event_id, _, _ in events]
    assert ids == list(range(1, len(ids) + 1))
    outputs = [data["text"] for _, kind, data in events if kind == "output"]
    assert outputs == [f"Unit {n} of {QUERY!r} done." for n in range(UNITS)]

    # A client coming back gets the same task, finished, with its whole report.
    with ResearchClient(f"http://127.0.0.1:{server.port}/", server.token) as client:
        task = client.research(QUERY, display=False)
        assert (task.task_id, task.created, task.status) == (task_id, False, "completed")
        assert task.wait(30) == done["result"]["report"]
        assert [e.id for e in task.events()] == ids


def test_the_widgets_buttons_pause_resume_and_cancel_the_real_task(
    server: ServerProcess, kernel: KernelSession
) -> None:
    task_id = last_json(kernel.run(SUBMIT).stdout)["task_id"]
    with server.client() as api:
        wait_info(api, task_id, lambda i: i["percentage"] >= 5)
        press = """
import time
[w] = widgets(task)
w.{button}_button.click()
deadline = time.monotonic() + 10
while w.state.status != {expected!r} and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps([w.state.status, w.notice.value]))
"""

        def click(button: str, expected: str) -> Any:
            return last_json(kernel.run(press.format(button=button, expected=expected)).stdout)

        assert click("pause", "paused") == ["paused", ""]
        assert api.get(f"tasks/{task_id}").json()["status"] == "paused"

        assert click("resume", "running") == ["running", ""]
        assert click("cancel", "cancelled") == ["cancelled", ""]
        info = wait_info(api, task_id, lambda i: i["status"] == "cancelled")
    assert info["attempts"] == 2  # started, then resumed once: finished units were kept


def test_the_event_thread_rides_out_a_server_restart(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dr_testing import servers

    url = f"http://127.0.0.1:{server.port}/"
    with ResearchClient(url, server.token, backoff=Backoff(initial=0.1, maximum=0.5)) as client:
        task = client.research(QUERY, display=False)
        deadline = time.monotonic() + 30
        while task.percentage < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.stop() == 0  # SIGTERM: the server pauses the task and goes away
        seen_before_restart = task.last_event_id
        monkeypatch.setattr(servers, "free_port", lambda: int(url.rsplit(":", 1)[1][:-1]))
        server.start()  # same port, same token, same storage: it resumes the task
        report = task.wait(120)
        ids = [event.id for event in task._history]
        assert ids == list(range(1, len(ids) + 1))  # no gap, no duplicate across the restart
        assert ids[-1] > seen_before_restart
        assert task.refresh().attempts == 2
        final = client.info(task.task_id).result
        assert final is not None and report == final.report
        statuses = [e.data["status"] for e in task._history if e.type == "status"]
        paused_at = statuses.index("paused")  # by the shutdown, replayed if missed live
        assert statuses[-1] == "completed" and "running" in statuses[paused_at:]
