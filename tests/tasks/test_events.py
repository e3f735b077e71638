"""`EventHub`: followers get exactly the durable events, in order, live and replayed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dr_testing.disk import Disk
from dr_testing.stores import async_test, new_state
from dr_testing.waiting import eventually
from jupyter_deepresearch.extension.models import Status
from jupyter_deepresearch.extension.store.base import Event, TaskState
from jupyter_deepresearch.extension.store.files import FileTaskStore
from jupyter_deepresearch.extension.tasks.events import EventHub


class Task:
    """One task written through the store and published to the hub, as the runner does."""

    def __init__(self, store: FileTaskStore, hub: EventHub, state: TaskState) -> None:
        self.store, self.hub, self.state = store, hub, state

    async def emit(self, type: str, data: dict[str, Any]) -> Event:
        event = await self.store.append(self.state, type, data)
        await self.hub.published(self.state, event, keep_recent=True)
        return event


async def setup(tmp_path: Path) -> tuple[FileTaskStore, EventHub, Task]:
    store = FileTaskStore(tmp_path / "tasks", flush_interval=3600)  # only the hub flushes
    await store.open()
    state = new_state()
    assert await store.create(state)
    states = {state.task_id: state}

    async def get(task_id: str) -> TaskState:
        return states[task_id]

    hub = EventHub(store, get)
    return store, hub, Task(store, hub, state)


async def collect(hub: EventHub, task_id: str, after: int = 0, **kw: Any) -> list[int]:
    return [e.id async for e in hub.follow(task_id, after, **kw) if isinstance(e, Event)]


@async_test
async def test_a_live_follower_gets_every_event_once_then_stops_at_the_end(
    tmp_path: Path,
) -> None:
    store, hub, task = await setup(tmp_path)
    try:
        await task.emit("status", {"status": Status.running.value})
        follower = asyncio.create_task(collect(hub, task.state.task_id))
        for n in range(5):
            await task.emit("output", {"text": f"line {n}"})
            await asyncio.sleep(0)
        await task.emit("status", {"status": Status.completed.value})
        ids = await asyncio.wait_for(follower, 10)
        assert ids == list(range(1, 8))
        # A follower resuming after id 3 gets exactly the rest, from the window or the store.
        assert await collect(hub, task.state.task_id, after=3) == [4, 5, 6, 7]
        hub.forget(task.state.task_id)
        assert await collect(hub, task.state.task_id, after=3) == [4, 5, 6, 7]
    finally:
        await hub.close()
        await store.close()


@async_test
async def test_an_event_the_disk_refused_reaches_no_follower_until_it_is_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, hub, task = await setup(tmp_path)
    disk = Disk(monkeypatch)
    try:
        await task.emit("status", {"status": Status.running.value})
        await eventually(lambda: _async(hub.durable_limit(task.state) >= 1))
        disk.failing = True
        await task.emit("output", {"text": "not on disk yet"})
        await eventually(lambda: _async(hub.failure is not None))
        assert hub.durable_limit(task.state) == 1
        assert await collect(hub, task.state.task_id, live=False) == [1]
        disk.failing = False
        await hub.recover()
        await eventually(lambda: _async(hub.durable_limit(task.state) >= 2))
        assert await collect(hub, task.state.task_id, live=False) == [1, 2]
    finally:
        await hub.close()
        await store.close()


async def _async(value: bool) -> bool:
    return value
