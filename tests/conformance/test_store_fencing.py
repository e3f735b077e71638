"""Fencing, on every backend: a writer frozen past its lease never writes over the new holder."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from dr_testing.stores import StoreFactory, async_test, new_state
from dr_testing.stores import opened_store as opened
from dr_testing.waiting import eventually
from jupyter_deepresearch.extension.errors import LeaseLost
from jupyter_deepresearch.extension.store.base import LeaseRequest, TaskStore

LEASE = 0.5  # seconds: short, so a lapse takes a moment


class Writer:
    """A store with a `writer_id`, as the manager sets one up, recording lease-loss reports."""

    def __init__(self, store: TaskStore, writer_id: str) -> None:
        self.store = store
        self.lost: list[str] = []
        store.writer_id = writer_id
        store.writer_lease_seconds = LEASE
        store.on_lease_lost = self._on_lost

    async def _on_lost(self, task_id: str) -> None:
        self.lost.append(task_id)


@contextlib.asynccontextmanager
async def writer(make_store: StoreFactory, writer_id: str) -> AsyncIterator[Writer]:
    async with opened(make_store) as store:
        yield Writer(store, writer_id)


async def lapsed(store: TaskStore, task_id: str) -> None:
    """Wait (bounded) until nobody holds the task's lease."""

    async def free() -> bool:
        return await store.lease_holder(task_id) is None

    await eventually(free, timeout=10)


async def events(store: TaskStore, task_id: str) -> list[tuple[int, str | None]]:
    """The task's stored events as (id, output text or status)."""
    return [(e.id, e.data.get("text", e.data.get("status"))) async for e in store.events(task_id)]


@async_test
async def test_a_writer_frozen_past_its_lease_never_writes_over_the_new_holder(
    make_store: StoreFactory,
) -> None:
    async with writer(make_store, "a") as a, writer(make_store, "b") as b:
        state = new_state()
        task_id = state.task_id
        assert await a.store.create(state, lease=LeaseRequest("a", LEASE))
        await a.store.append(state, "status", {"status": "running"})
        await a.store.append(state, "output", {"text": "a1"})
        await a.store.flush()

        # A freezes: its lease lapses and B takes the task over and writes.
        async def take() -> bool:
            return await b.store.acquire_lease(task_id, "b", 30)

        await eventually(take, timeout=10)
        taken = await b.store.load(task_id)
        assert taken is not None and taken.last_event_id == 2
        await b.store.append(taken, "output", {"text": "b1"})
        await b.store.save_checkpoint(taken, "plan", "from b")
        await b.store.save(taken)

        # A wakes up and carries on as if nothing happened.
        await a.store.append(state, "output", {"text": "a2"})  # id 3, as B's "b1"
        await a.store.flush()  # never raises: other tasks in its batch are still written
        assert a.lost == [task_id]
        with pytest.raises(LeaseLost):
            await a.store.save(state)
        with pytest.raises(LeaseLost):
            await a.store.save_checkpoint(state, "plan", "from a")
        with pytest.raises(LeaseLost):
            await a.store.reset_run(state)
        assert a.lost == [task_id]  # reported once per loss
        assert b.lost == []

        await b.store.append(taken, "output", {"text": "b2"})
        await b.store.save(taken)
        expected = [(1, "running"), (2, "a1"), (3, "b1"), (4, "b2")]
        assert await events(b.store, task_id) == expected
        async with opened(make_store) as reader:
            assert await events(reader, task_id) == expected
            loaded = await reader.load(task_id)
            assert loaded is not None
            assert loaded.last_event_id == 4 and loaded.outputs == ["a1", "b1", "b2"]
            assert loaded.checkpoints == {"plan": "from b"}
            assert await reader.lease_holder(task_id) == "b"


@async_test
async def test_a_lapsed_lease_nobody_took_still_lets_its_writer_write(
    make_store: StoreFactory,
) -> None:
    async with writer(make_store, "a") as a:
        state = new_state()
        assert await a.store.create(state, lease=LeaseRequest("a", LEASE))
        await a.store.append(state, "status", {"status": "running"})
        await a.store.flush()
        await lapsed(a.store, state.task_id)  # a stall; nobody else took the task

        await a.store.append(state, "output", {"text": "after the lapse"})
        await a.store.flush()
        await a.store.save_checkpoint(state, "plan", "kept")
        await a.store.save(state)
        assert a.lost == []
        async with opened(make_store) as reader:
            assert await events(reader, state.task_id) == [
                (1, "running"),
                (2, "after the lapse"),
            ]
            loaded = await reader.load(state.task_id)
            assert loaded is not None and loaded.checkpoints == {"plan": "kept"}


@async_test
async def test_a_lapsed_lease_nobody_took_is_renewed_one_taken_is_not(
    make_store: StoreFactory,
) -> None:
    async with writer(make_store, "a") as a, writer(make_store, "b") as b:
        kept, taken = new_state(), new_state()
        for state in (kept, taken):
            assert await a.store.create(state, lease=LeaseRequest("a", LEASE))
            await a.store.append(state, "status", {"status": "running"})
        await a.store.flush()
        await lapsed(a.store, kept.task_id)
        await lapsed(a.store, taken.task_id)
        assert await b.store.acquire_lease(taken.task_id, "b", 30)

        ids = [kept.task_id, taken.task_id]
        assert await a.store.renew_leases(ids, "a", 30) == {kept.task_id}
        assert await b.store.lease_holder(kept.task_id) == "a"
        assert await a.store.lease_holder(taken.task_id) == "b"


@async_test
async def test_a_store_without_writer_id_is_not_fenced(make_store: StoreFactory) -> None:
    async with opened(make_store) as plain, writer(make_store, "b") as b:
        state = new_state()
        assert await plain.create(state, lease=LeaseRequest("a", 30))
        assert await b.store.lease_holder(state.task_id) == "a"
        await plain.append(state, "output", {"text": "unfenced"})
        await plain.save(state)
        assert await events(b.store, state.task_id) == [(1, "unfenced")]
