"""A DELETE right after a resume stops the resumed run: nothing of the task runs or comes back.

Seen once on a loaded machine from the JupyterLab panel (resume, then delete at once): the
DELETE answered 204, yet the run went on and the task completed. Found here: the resumed run
is cancelled while its snapshot write runs in a thread (`FileTaskStore.save` awaits
`asyncio.to_thread` under the task's lock); cancelling releases the lock at once, the DELETE
removes the files, then the thread renames its snapshot into place: `<id>.json` is back,
`running`, without lease or log, so takeover later resumes it. Slow snapshot writes (the
`slow_snapshots` fixture, a loaded machine's disk) open that window every time. Now a cancelled
caller waits for its thread's write before it lets go of the lock; and a resume that comes
after the DELETE takes no lease of the deleted task (none is left behind).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dr_testing.pipelines import GATES, UNIT_CALLS
from dr_testing.waiting import eventually, wait_status

ROUNDS = 15
SLOW_WRITE_SECONDS = 0.2


def runs_of(task_id: str) -> list[asyncio.Task[Any]]:
    """The runner tasks of `task_id` that have not finished."""
    return [
        t for t in asyncio.all_tasks() if t.get_name() == f"deepresearch-{task_id}" and not t.done()
    ]


async def paused_task(api: Any, query: str) -> str:
    GATES[query] = asyncio.Event()
    GATES[query].set()
    task_id = str(json.loads((await api("POST", "tasks", body={"query": query})).body)["task_id"])
    await wait_status(api, task_id, "running")
    assert (await api("POST", "tasks", task_id, "pause")).code == 200
    return task_id


async def assert_gone(api: Any, dr_app: Any, task_id: str, query: str) -> None:
    calls = sum(v for k, v in UNIT_CALLS.items() if k.startswith(f"{query}|"))
    # Whatever still ran of the task must end by itself (bounded), and leave nothing behind.
    await eventually(lambda: _true(not runs_of(task_id)))
    assert task_id not in dr_app.manager.runner.live
    after = await api("GET", "tasks", task_id)
    files = sorted(p.name for p in dr_app.manager.store.directory.glob(f"{task_id}*"))
    assert after.code == 404, f"deleted, yet the server has it ({files}): {after.body!r}"
    assert not list(dr_app.manager.store.directory.glob(f"{task_id}*"))
    assert sum(v for k, v in UNIT_CALLS.items() if k.startswith(f"{query}|")) == calls


async def _true(value: bool) -> bool:
    return value


class SlowSnapshots:
    """Snapshot writes that take a while in their thread, as on a loaded machine or slow disk."""

    def __init__(self) -> None:
        self.running = threading.Event()  # a `running` snapshot is being written
        self._busy = 0
        self._lock = threading.Lock()

    def idle(self) -> bool:
        with self._lock:
            return self._busy == 0

    def wrap(self, write: Any) -> Any:
        def slow_write(path: Path, data: bytes) -> None:
            with self._lock:
                self._busy += 1
            try:
                if b'"status":"running"' in data:
                    self.running.set()
                time.sleep(SLOW_WRITE_SECONDS)
                write(path, data)
            finally:
                with self._lock:
                    self._busy -= 1

        return slow_write


@pytest.fixture
def slow_snapshots(monkeypatch: pytest.MonkeyPatch) -> SlowSnapshots:
    from jupyter_deepresearch.extension.store import files

    slow = SlowSnapshots()
    monkeypatch.setattr(files, "atomic_write", slow.wrap(files.atomic_write))
    return slow


@pytest.mark.parametrize(
    "together",
    [False, True],
    ids=["in-turn", "concurrently"],
)
async def test_delete_right_after_resume_stops_the_resumed_run(
    api: Any, dr_app: Any, together: bool
) -> None:
    for n in range(ROUNDS):
        query = f"delete-after-resume {together} {n} units=40 delay=0.05"
        task_id = await paused_task(api, query)
        if together:
            resumed, deleted = await asyncio.gather(
                api("POST", "tasks", task_id, "resume"), api("DELETE", "tasks", task_id)
            )
            assert resumed.code in (200, 404, 409)
        else:
            assert (await api("POST", "tasks", task_id, "resume")).code == 200
            deleted = await api("DELETE", "tasks", task_id)
        assert deleted.code == 204
        await assert_gone(api, dr_app, task_id, query)


async def test_a_delete_during_the_resumed_runs_snapshot_write_leaves_no_task(
    api: Any, dr_app: Any, slow_snapshots: SlowSnapshots
) -> None:
    query = "delete-during-write units=40 delay=0.05"
    task_id = await paused_task(api, query)
    slow_snapshots.running.clear()
    resume = asyncio.ensure_future(api("POST", "tasks", task_id, "resume"))
    # The resumed run writes its `running` snapshot in a thread: delete the task meanwhile.
    await eventually(lambda: _true(slow_snapshots.running.is_set()))
    assert (await api("DELETE", "tasks", task_id)).code == 204
    assert (await resume).code == 200
    await eventually(lambda: _true(slow_snapshots.idle()))  # every write thread has ended
    await assert_gone(api, dr_app, task_id, query)
