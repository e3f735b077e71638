"""`LeaseKeeper`: the leases one manager holds, on a real `files` store shared with another."""

from __future__ import annotations

from pathlib import Path

from dr_testing.stores import async_test, new_state
from dr_testing.stores import opened_store as opened
from jupyter_deepresearch.extension.store.files import FileTaskStore
from jupyter_deepresearch.extension.tasks.lease_keeper import LeaseKeeper


@async_test
async def test_one_holder_at_a_time_and_release_frees_it(tmp_path: Path) -> None:
    async with opened(lambda: FileTaskStore(tmp_path / "tasks")) as store:
        state = new_state()
        assert await store.create(state)
        mine, theirs = LeaseKeeper(store, 30), LeaseKeeper(store, 30)
        assert mine.owner != theirs.owner
        assert await mine.acquire(state.task_id)
        assert await mine.acquire(state.task_id)  # keeping it is taking it again
        assert not await theirs.acquire(state.task_id)
        assert await theirs.holder(state.task_id) == mine.owner
        await mine.release(state.task_id)
        assert state.task_id not in mine.held
        assert await theirs.acquire(state.task_id)


@async_test
async def test_renew_keeps_live_leases_and_reports_the_ones_lost(tmp_path: Path) -> None:
    async with opened(lambda: FileTaskStore(tmp_path / "tasks")) as store:
        kept, lost = new_state(), new_state()
        for state in (kept, lost):
            assert await store.create(state)
        mine = LeaseKeeper(store, 0.2)
        assert await mine.acquire(kept.task_id) and await mine.acquire(lost.task_id)
        # Another server takes one over after it lapsed (a frozen process, say).
        await store.release_lease(lost.task_id, mine.owner)
        theirs = LeaseKeeper(store, 30)
        assert await theirs.acquire(lost.task_id)
        assert await mine.renew() == [lost.task_id]
        assert mine.held == {kept.task_id}
        assert await mine.renew() == []


@async_test
async def test_release_all_lets_every_task_go(tmp_path: Path) -> None:
    async with opened(lambda: FileTaskStore(tmp_path / "tasks")) as store:
        states = [new_state() for _ in range(3)]
        mine = LeaseKeeper(store, 30)
        for state in states:
            assert await store.create(state)
            assert await mine.acquire(state.task_id)
        await mine.release_all()
        assert mine.held == set()
        for state in states:
            assert await store.lease_holder(state.task_id) is None


def test_a_non_positive_lease_falls_back_to_the_default(tmp_path: Path) -> None:
    assert LeaseKeeper(FileTaskStore(tmp_path), 0).seconds == 30.0
    assert LeaseKeeper(FileTaskStore(tmp_path), 9).renew_every == 3.0
