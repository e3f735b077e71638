"""Following a task another process writes: inotify wakes the follower, polling backs it up."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from store_helpers import async_test, new_state, opened

from jupyter_deepresearch.extension.store import _files_shared
from jupyter_deepresearch.extension.store.base import TaskState

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from jupyter_deepresearch.extension.store.base import TaskState
    from jupyter_deepresearch.extension.store.files import FileTaskStore

    async def main():
        store = FileTaskStore(Path(sys.argv[1]), flush_interval=3600)
        await store.open()
        state = await store.load(sys.argv[2])
        await store.append(state, "progress", {"step": "search", "percentage": 40})
        await store.flush()
        await store.close()

    asyncio.run(main())
    """
)


async def stored_task(folder: Path) -> TaskState:
    """A task saved by a store that is then closed: the follower sees only later writes."""
    async with opened(folder) as writer:
        state = new_state()
        assert await writer.create(state)
        await writer.save(state, durable=True)
    return state


@async_test
async def test_a_write_by_another_process_wakes_a_follower_without_waiting_for_a_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "tasks"
    state = await stored_task(folder)
    # Polls so rare that only a wake-up can end the wait within the test's bound.
    monkeypatch.setattr(_files_shared, "WATCHED_POLL_SECONDS", 3600.0)
    async with opened(folder) as follower:
        waiting = asyncio.create_task(follower.wait_changed(state.task_id, 0, timeout=3600))
        await asyncio.sleep(0.2)  # the follower is watching
        assert not waiting.done()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, str(folder), state.task_id
        )
        assert await asyncio.wait_for(process.wait(), 60) == 0
        assert await asyncio.wait_for(waiting, 30) is True
        assert follower._watch.available is True and follower._watch.wakeups >= 1
        events = [event async for event in follower.events(state.task_id)]
        assert [event.type for event in events][-1] == "progress"


@async_test
async def test_without_inotify_the_follower_still_sees_the_write_by_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "tasks"
    state = await stored_task(folder)
    monkeypatch.setitem(sys.modules, "asyncinotify", None)  # as on a machine without it
    async with opened(folder) as follower:
        waiting = asyncio.create_task(follower.wait_changed(state.task_id, 0, timeout=60))
        await asyncio.sleep(0.2)
        result = subprocess.run(
            [sys.executable, "-c", WRITER, str(folder), state.task_id], timeout=60, check=False
        )
        assert result.returncode == 0
        assert await asyncio.wait_for(waiting, 30) is True
        assert follower._watch.available is False
