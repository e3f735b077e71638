"""`ResearchTask` and `research()`: live attributes, wait, control, errors, text mode."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kernel_fakes import END, TASK_ID, FakeServer, Reply, sse, task_info, task_routes
from pydantic import SecretStr

from jupyter_deepresearch.extension.models import AISettings, ReportSettings
from jupyter_deepresearch.kernel_helpers import (
    BadRequestError,
    ConflictError,
    ResearchCancelled,
    ResearchClient,
    ResearchFailed,
    ResearchPaused,
    ResearchTask,
    TaskEvent,
    research,
)
from jupyter_deepresearch.kernel_helpers._task import WIDGET_VIEW
from jupyter_deepresearch.kernel_helpers._widget import TASK_MIME

RUN = [
    sse(1, "status", {"status": "running"}),
    sse(2, "progress", {"step": "plan", "percentage": 10, "message": "Planning"}),
    sse(3, "progress", {"step": "search", "percentage": 50, "message": "Searching: asyncio"}),
    sse(4, "output", {"text": "# Report\n\n"}),
    sse(5, "output", {"text": "Tasks are cancelled [1]."}),
    sse(6, "progress", {"step": "report", "percentage": 100, "message": "Report written"}),
    sse(
        7,
        "result",
        {
            "report": "# Report\n\nTasks are cancelled [1].",
            "sources": [{"id": "1", "title": "asyncio", "url": "https://docs.python.org/3/"}],
        },
    ),
    sse(8, "status", {"status": "completed"}),
]


DONE = {"status": "completed"}


def submit_body(fake: FakeServer) -> object:
    return [r.body for r in fake.requests if r.path == "/api/deepresearch/tasks"][-1]


def test_research_returns_at_once_while_the_stream_is_still_open(
    fake: FakeServer, client: ResearchClient
) -> None:
    release = threading.Event()
    task_routes(fake, task_info())
    fake.sse_scripts = [[*RUN[:3], ("wait", release), *RUN[3:], END]]
    # The stream is held open until `release`: returning at all proves research() did not wait.
    task = research("What is asyncio?", client=client, display=False)
    assert isinstance(task, ResearchTask) and task.created
    assert task.task_id == TASK_ID
    deadline = time.monotonic() + 5
    while task.percentage < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (task.status, task.step, task.percentage) == ("running", "search", 50)
    assert task.messages == ["Planning", "Searching: asyncio"]
    assert task.report == ""
    release.set()
    assert task.wait(10) == "# Report\n\nTasks are cancelled [1]."
    assert task.status == "completed"
    assert task.sources == [{"id": "1", "title": "asyncio", "url": "https://docs.python.org/3/"}]
    assert task.last_event_id == 8
    assert not task.following


def test_settings_send_only_the_fields_given_and_reveal_secrets(
    fake: FakeServer, client: ResearchClient
) -> None:
    task_routes(fake, task_info())
    client.submit(
        "q",
        ai=AISettings(provider="openai-compatible", api_key=SecretStr("sk-1")),
        search={"sources": ("docs",), "max_results": 3},
        report=ReportSettings(breadth=2),
        restart=True,
    )
    assert submit_body(fake) == {
        "query": "q",
        "ai": {"provider": "openai-compatible", "api_key": "sk-1"},
        "search": {"sources": ["docs"], "max_results": 3},
        "report": {"breadth": 2},
        "restart": True,
    }
    client.submit("q")
    assert submit_body(fake) == {"query": "q"}


def test_server_errors_are_exceptions_with_the_servers_message(
    fake: FakeServer, client: ResearchClient
) -> None:
    fake.routes[("POST", "/api/deepresearch/tasks")] = lambda _: Reply(
        400, {"message": "Invalid request: ai.temperature: must be at most 2"}
    )
    with pytest.raises(BadRequestError, match=r"ai\.temperature") as caught:
        client.submit("q", ai={"temperature": 9})
    assert caught.value.status_code == 400
    assert caught.value.message == "Invalid request: ai.temperature: must be at most 2"


def test_pause_resume_cancel_and_conflicts(fake: FakeServer, client: ResearchClient) -> None:
    task_routes(fake, task_info(status="running"))
    task = client.submit("q")
    assert task.pause().status == "paused"
    with pytest.raises(ConflictError, match="Cannot pause a task that is paused"):
        task.pause()
    fake.sse_scripts = [[sse(1, "status", {"status": "cancelled"}), END]]
    assert task.resume().status == "running"
    assert task.cancel().status == "cancelled"
    assert fake.paths("POST")[-3:] == [
        f"/api/deepresearch/tasks/{TASK_ID}/pause",
        f"/api/deepresearch/tasks/{TASK_ID}/resume",
        f"/api/deepresearch/tasks/{TASK_ID}/cancel",
    ]


def test_list_get_delete(fake: FakeServer, client: ResearchClient) -> None:
    task_routes(fake, task_info(status="completed", last_event_id=8, attempts=1))
    [info] = client.list(status="completed", limit=5)
    assert info.task_id == TASK_ID and info.attempts == 1
    assert fake.requests[-1].query == {"status": ["completed"], "limit": ["5"]}
    assert client.get(TASK_ID).status == "completed"
    client.delete(TASK_ID)
    assert fake.requests[-1].method == "DELETE"
    with pytest.raises(ValueError, match="Not a task id"):
        client.get("../../etc/passwd")


def test_wait_raises_for_failed_cancelled_paused_and_timeout(
    fake: FakeServer, client: ResearchClient
) -> None:
    task_routes(fake, task_info())
    fake.sse_scripts = [[sse(1, "status", {"status": "failed", "error": "Provider said no"}), END]]
    with pytest.raises(ResearchFailed, match="Provider said no"):
        client.research("q", display=False).wait(10)

    fake.sse_scripts = [[sse(1, "status", {"status": "cancelled"}), END]]
    with pytest.raises(ResearchCancelled):
        client.research("q", display=False).wait(10)

    missing = "The provider needs an api_key"
    fake.sse_scripts = [
        [sse(1, "status", {"status": "paused", "reason": "credentials", "error": missing})]
    ]
    with pytest.raises(ResearchPaused, match="needs an api_key"):
        client.research("q", display=False).wait(10)

    release = threading.Event()
    fake.sse_scripts = [[sse(1, "status", {"status": "running"}), ("wait", release), END]]
    task = client.research("q", display=False)
    with pytest.raises(TimeoutError, match="still"):
        task.wait(0.3)
    task.stop()
    release.set()


def test_a_task_paused_by_a_server_shutdown_is_waited_through(
    fake: FakeServer, client: ResearchClient
) -> None:
    task_routes(fake, task_info(status="running"))
    fake.sse_scripts = [
        [sse(1, "status", {"status": "paused", "reason": "shutdown"}), END],
        [
            sse(2, "status", {"status": "running"}),
            *RUN[6:7],
            sse(9, "status", {"status": "completed"}),
            END,
        ],
    ]
    assert client.research("q", display=False).wait(10).startswith("# Report")


def test_a_completed_task_is_returned_without_waiting(
    fake: FakeServer, client: ResearchClient
) -> None:
    result = {"report": "Done.", "sources": []}
    task_routes(fake, task_info(status="completed", last_event_id=8, result=result), created=False)
    fake.sse_scripts = [[*RUN, END]]
    task = client.research("q", display=False)
    assert not task.created
    assert task.status == "completed" and task.report == "Done."
    assert task.wait(5) == "Done."
    # The replay brought the history: messages, without moving the status back.
    assert task.messages == ["Planning", "Searching: asyncio", "Report written"]
    assert task.status == "completed"


def test_events_iterator_from_an_id(fake: FakeServer, client: ResearchClient) -> None:
    task_routes(fake, task_info())
    task = client.submit("q")
    fake.sse_scripts = [[*RUN[5:], END]]
    assert [e.id for e in task.events(after=5)] == [6, 7, 8]
    assert fake.requests[-1].headers["last-event-id"] == "5"


def test_stop_ends_the_event_thread(fake: FakeServer, client: ResearchClient) -> None:
    release = threading.Event()
    task_routes(fake, task_info())
    fake.sse_scripts = [[RUN[0], ("wait", release), END]]
    task = client.research("q", display=False)
    deadline = time.monotonic() + 5
    while task.status != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    task.stop()
    deadline = time.monotonic() + 2
    while task.following and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    assert not task.following


def test_text_mode_prints_a_summary_then_progress_on_wait(
    fake: FakeServer, client: ResearchClient, text_mode: None, capsys: pytest.CaptureFixture[str]
) -> None:
    task_routes(fake, task_info())
    fake.sse_scripts = [[*RUN, END]]
    task = client.research("What is asyncio?")
    task.wait(10)
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"Research task {TASK_ID} (new): What is asyncio?",
        "[running]",
        "[ 10%] plan: Planning",
        "[ 50%] search: Searching: asyncio",
        "[100%] report: Report written",
        "[completed]",
    ]
    markdown = task._repr_markdown_()
    assert f"`{TASK_ID}`: **completed**, 100%" in markdown
    assert "Tasks are cancelled [1]." in markdown
    bundle = task._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/markdown"}
    assert bundle["text/plain"] == f"<ResearchTask {TASK_ID} completed 100%>"


def test_widget_mode_displays_a_widget_with_a_markdown_fallback(
    fake: FakeServer, client: ResearchClient, widget_mode: None
) -> None:
    task_routes(fake, task_info())
    fake.sse_scripts = [[*RUN, END]]
    task = client.research("q", display=False)
    task.wait(10)
    bundle = task._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert "Tasks are cancelled" in bundle["text/markdown"]


def test_text_progress_is_compact_one_line_per_status_and_step() -> None:
    from jupyter_deepresearch.kernel_helpers._render import ProgressPrinter

    printer = ProgressPrinter()
    events = [
        sse_event(1, "status", status="queued"),
        sse_event(2, "status", status="running"),
        sse_event(3, "progress", step="search", percentage=10, message="Searching: a"),
        sse_event(4, "progress", step="search", percentage=20, message="Searching: b"),
        sse_event(5, "output", text="chunk"),
        sse_event(6, "progress", step="report", percentage=90),
        sse_event(7, "status", status="failed", error="boom"),
    ]
    lines = [printer.line(e) for e in events]
    assert [line for line in lines if line] == [
        "[queued]",
        "[running]",
        "[ 10%] search: Searching: a",
        "[ 90%] report",
        "[failed] boom",
    ]


def sse_event(event_id: int, type: str, **data: object) -> TaskEvent:
    return TaskEvent(event_id, type, dict(data))


def test_kernel_shutdown_stops_every_event_thread(fake: FakeServer, client: ResearchClient) -> None:
    from jupyter_deepresearch.kernel_helpers._task import _stop_all

    release = threading.Event()
    task_routes(fake, task_info())
    fake.sse_scripts = [[RUN[0], ("wait", release), END]] * 2
    tasks = [client.research("q", display=False) for _ in range(2)]
    deadline = time.monotonic() + 5
    while any(t.status != "running" for t in tasks) and time.monotonic() < deadline:
        time.sleep(0.01)
    _stop_all()  # what the atexit hook runs when the kernel process exits
    release.set()
    assert not any(t.following for t in tasks)


class Published:
    """What `display()` sends to the front end, as IPython's display publisher sees it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        self.messages: list[dict[str, Any]] = []
        shell = InteractiveShell.instance()

        def publish(data: dict[str, Any], metadata: Any = None, **kwargs: Any) -> None:
            self.messages.append({"data": data, **kwargs})

        monkeypatch.setattr(shell.display_pub, "publish", publish)

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 10
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.messages


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> Iterator[Published]:
    from IPython.core.interactiveshell import InteractiveShell

    yield Published(monkeypatch)
    InteractiveShell.clear_instance()


def test_a_displayed_widget_becomes_the_markdown_report_once_the_task_completes(
    fake: FakeServer, client: ResearchClient, widget_mode: None, published: Published
) -> None:
    # A saved notebook reopened after a kernel restart showed "Error displaying widget: model
    # not found" where the report was: the output kept only a widget view.
    from IPython.display import display

    release = threading.Event()
    task_routes(fake, task_info())
    fake.sse_scripts = [[RUN[0], ("wait", release), *RUN[1:], END]]
    task = client.research("q", display=False)
    display(task)
    release.set()
    first, update = published.wait_for(2)
    assert set(first["data"]) == {"text/plain", "text/markdown", WIDGET_VIEW, TASK_MIME}
    # Saved now, the output names its task (JupyterLab shows it from the server) and its
    # Markdown says how to get the task back where the widget's model is gone.
    assert first["data"][TASK_MIME] == {"task_id": TASK_ID, "query": task.query}
    assert "run the cell again to reattach" in first["data"]["text/markdown"]
    display_id = first["transient"]["display_id"]
    assert update["update"] is True and update["transient"]["display_id"] == display_id
    assert set(update["data"]) == {"text/plain", "text/markdown"}
    assert "Tasks are cancelled [1]." in update["data"]["text/markdown"]
    assert "**completed**, 100%" in update["data"]["text/markdown"]
    assert "reattach" not in update["data"]["text/markdown"]


def test_a_completed_task_is_displayed_as_markdown_without_a_widget(
    fake: FakeServer, client: ResearchClient, widget_mode: None, published: Published
) -> None:
    from IPython.display import display

    task_routes(fake, task_info())
    fake.sse_scripts = [[*RUN, END]]
    task = client.research("q", display=False)
    task.wait(10)
    display(task)
    [shown] = published.wait_for(1)
    assert set(shown["data"]) == {"text/plain", "text/markdown"}
    assert "Tasks are cancelled [1]." in shown["data"]["text/markdown"]
