"""A lease holder frozen in the middle of a write, past its lease, never writes after a takeover.

The lease check and the write are two steps; a shared folder has no compare-and-write. Both
happen under the task's write lock, which a takeover takes too: the frozen write finishes first,
the takeover comes after it, and the old holder's next write finds the lease gone. (Found by the
N=1,000 chaos run: a runner stopped by SIGSTOP between the two steps wrote one more event after
another server had taken its task over.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_helpers import async_test, new_state, opened

from dr_testing.waiting import eventually
from jupyter_deepresearch.extension.errors import LeaseLost
from jupyter_deepresearch.extension.store import _atomic
from jupyter_deepresearch.extension.store import files as files_module
from jupyter_deepresearch.extension.store.base import LeaseRequest

LEASE = 0.5  # seconds


class FrozenWrite:
    """Makes the next snapshot write of one task stop inside the write until `thaw()`."""

    def __init__(self) -> None:
        self.task_id = ""
        self.inside = threading.Event()
        self._thawed = threading.Event()

    def write(self, path: Path, data: bytes, **kwargs: Any) -> None:
        if self.task_id and path.name == f"{self.task_id}.json" and not self.inside.is_set():
            self.inside.set()  # the lease was checked; the process "freezes" before writing
            assert self._thawed.wait(30), "the test never thawed the write"
        _atomic.atomic_write(path, data, **kwargs)

    def thaw(self) -> None:
        self._thawed.set()


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[FrozenWrite]:
    freezer = FrozenWrite()
    monkeypatch.setattr(files_module, "atomic_write", freezer.write)
    yield freezer
    freezer.thaw()  # never leave a thread waiting


@async_test
async def test_a_write_frozen_past_the_lease_holds_the_takeover_off_until_written(
    folder: Path, frozen: FrozenWrite
) -> None:
    async with opened(folder) as a, opened(folder) as b:
        a.writer_id, b.writer_id = "a", "b"
        a.writer_lease_seconds = b.writer_lease_seconds = LEASE
        state = new_state()
        task_id = state.task_id
        assert await a.create(state, lease=LeaseRequest("a", LEASE))
        await a.append(state, "status", {"status": "running"})
        await a.append(state, "output", {"text": "a1"})
        frozen.task_id = task_id
        saving = asyncio.create_task(a.save(state))
        assert await asyncio.to_thread(frozen.inside.wait, 10)

        async def lapsed() -> bool:
            return await b.lease_holder(task_id) is None

        await eventually(lapsed, timeout=10)
        # The lease has lapsed, but A is inside a write: taking the task now would let that
        # write land after B's first one.
        assert not await b.acquire_lease(task_id, "b", 30)
        assert not saving.done()

        frozen.thaw()
        await saving  # A's write lands, before any of B's

        async def take() -> bool:
            return await b.acquire_lease(task_id, "b", 30)

        await eventually(take, timeout=10)
        taken = await b.load(task_id)
        assert taken is not None and taken.outputs == ["a1"] and taken.last_event_id == 2

        await a.append(state, "output", {"text": "a2"})
        with pytest.raises(LeaseLost):
            await a.save(state)
        await b.append(taken, "output", {"text": "b1"})
        await b.save(taken)

    async with opened(folder) as reader:
        loaded = await reader.load(task_id)
        assert loaded is not None
        assert loaded.outputs == ["a1", "b1"] and loaded.last_event_id == 3
        assert await reader.lease_holder(task_id) == "b"


@async_test
async def test_a_deleted_task_leaves_no_write_lock_behind(folder: Path) -> None:
    async with opened(folder) as store:
        store.writer_id = "a"
        state = new_state()
        assert await store.create(state, lease=LeaseRequest("a", 30))
        await store.append(state, "output", {"text": "x"})
        await store.save(state)
        locks = folder / ".locks"
        assert [p.name for p in locks.iterdir()] == [f"{state.task_id}.lock"]
        assert await store.delete(state.task_id)
        assert list(locks.iterdir()) == []
