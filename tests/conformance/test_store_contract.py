"""The `TaskStore` contract, run unchanged against every backend (see conftest's `make_store`)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta

import pytest

from dr_testing.stores import StoreFactory, async_test, new_state
from dr_testing.stores import opened_store as opened
from jupyter_deepresearch.extension.models import Status
from jupyter_deepresearch.extension.store.base import (
    Event,
    LeaseRequest,
    TaskState,
    TaskStore,
    utcnow,
)


async def started(store: TaskStore, outputs: int = 3) -> TaskState:
    state = new_state()
    assert await store.create(state)
    await store.append(state, "status", {"status": "running"})
    state.attempts = 1
    await store.save(state)
    for i in range(outputs):
        await store.append(state, "output", {"text": f"chunk {i}"})
    return state


async def events(store: TaskStore, task_id: str, after: int = 0) -> list[Event]:
    return [event async for event in store.events(task_id, after)]


@async_test
async def test_create_is_exclusive_across_store_instances(make_store: StoreFactory) -> None:
    async with opened(make_store) as one, opened(make_store) as two:
        state = new_state()
        twin = TaskState(task_id=state.task_id, request=state.request)
        results = await asyncio.gather(one.create(state), two.create(twin))
        assert sorted(results) == [False, True]
        assert not await one.create(state)


@async_test
async def test_append_numbers_events_and_events_after_resumes(make_store: StoreFactory) -> None:
    async with opened(make_store) as store:
        state = await started(store, outputs=4)
        assert state.last_event_id == 5
        unflushed = await events(store, state.task_id)  # appended here: visible before a flush
        assert [e.id for e in unflushed] == [1, 2, 3, 4, 5]
        await store.flush()
    async with opened(make_store) as fresh:
        stored = await events(fresh, state.task_id)
        assert [(e.id, e.type) for e in stored] == [(1, "status")] + [
            (i, "output") for i in (2, 3, 4, 5)
        ]
        assert stored[1].data == {"text": "chunk 0"}
        assert [e.id for e in await events(fresh, state.task_id, 3)] == [4, 5]
        assert await events(fresh, state.task_id, 5) == []


@async_test
async def test_save_load_and_peek(make_store: StoreFactory) -> None:
    async with opened(make_store) as store:
        state = await started(store)
        await store.append(state, "result", {"report": "# R", "sources": []})
        await store.append(state, "status", {"status": "completed"})
        await store.save(state, durable=True)
    async with opened(make_store) as fresh:
        loaded = await fresh.load(state.task_id)
        assert loaded is not None
        assert loaded.status is Status.completed and loaded.attempts == 1
        assert loaded.outputs == ["chunk 0", "chunk 1", "chunk 2"]
        assert loaded.result == {"report": "# R", "sources": []}
        assert loaded.last_event_id == 6 and loaded.owner == "alice"
        head = await fresh.peek(state.task_id)
        assert head is not None and head.info() == loaded.info()
        assert await fresh.load(uuid.uuid4().hex) is None
        assert await fresh.peek(uuid.uuid4().hex) is None


@async_test
async def test_checkpoints_survive_and_reset_run_discards_them(make_store: StoreFactory) -> None:
    async with opened(make_store) as store:
        state = await started(store)
        await store.save_checkpoint(state, "plan", {"queries": ["a"]})
        await store.save(state)
    async with opened(make_store) as fresh:
        loaded = await fresh.load(state.task_id)
        assert loaded is not None and loaded.checkpoints == {"plan": {"queries": ["a"]}}
        await fresh.reset_run(loaded)
        assert loaded.run_first_event_id == 5 and loaded.outputs == []
        event = await fresh.append(loaded, "status", {"status": "queued"})
        assert event.id == 5  # ids never restart
        await fresh.save(loaded)
    async with opened(make_store) as again:
        reloaded = await again.load(state.task_id)
        assert reloaded is not None
        assert reloaded.checkpoints == {} and reloaded.outputs == []
        assert [e.id for e in await events(again, state.task_id)] == [5]
        assert [e.id for e in await events(again, state.task_id, 2)] == [5]


@async_test
async def test_summaries_list_every_task_with_status(make_store: StoreFactory) -> None:
    async with opened(make_store) as store:
        running = await started(store)
        paused = await started(store)
        await store.append(paused, "status", {"status": "paused", "reason": "shutdown"})
        await store.save(paused)
    async with opened(make_store) as fresh:
        rows = {row.task_id: row for row in await fresh.summaries()}
        assert set(rows) == {running.task_id, paused.task_id}
        assert rows[running.task_id].status is Status.running
        assert rows[paused.task_id].status is Status.paused
        assert rows[paused.task_id].paused_by == "shutdown"
        assert rows[running.task_id].owner == "alice"


@async_test
async def test_delete_removes_everything(make_store: StoreFactory) -> None:
    async with opened(make_store) as store:
        state = await started(store)
        await store.save(state)
        assert await store.delete(state.task_id)
        assert not await store.delete(state.task_id)
        assert await store.load(state.task_id) is None
        assert await events(store, state.task_id) == []
        assert state.task_id not in {row.task_id for row in await store.summaries()}
        assert await store.create(TaskState(task_id=state.task_id, request={}))


@async_test
async def test_expire_removes_only_old_finished_tasks(make_store: StoreFactory) -> None:
    async with opened(make_store) as store:
        done = await started(store)
        await store.append(done, "status", {"status": "completed"})
        await store.save(done, durable=True)
        paused = await started(store)
        await store.append(paused, "status", {"status": "paused"})
        await store.save(paused)
        assert await store.expire(utcnow() - timedelta(hours=1)) == []
        assert await store.expire(utcnow() + timedelta(seconds=1)) == [done.task_id]
        assert await store.load(paused.task_id) is not None


@async_test
async def test_expire_keeps_a_task_that_finished_in_the_cutoffs_own_millisecond(
    make_store: StoreFactory,
) -> None:
    """Regression: stored times keep milliseconds, so a task that finished at .123900, stored
    as .123, was deleted by a sweep whose cutoff was .123456 (it finished after the cutoff)."""
    async with opened(make_store) as store:
        done = await started(store)
        await store.append(done, "status", {"status": "completed"})
        await store.save(done, durable=True)
        [row] = [row for row in await store.summaries() if row.task_id == done.task_id]
        assert row.finished_at is not None
        stored = row.finished_at  # as stored: whole milliseconds
        assert stored.microsecond % 1000 == 0
        assert await store.expire(stored + timedelta(microseconds=999)) == []
        assert await store.expire(stored + timedelta(milliseconds=1)) == [done.task_id]


@async_test
async def test_leases_are_exclusive_renewable_and_lapse(make_store: StoreFactory) -> None:
    async with opened(make_store) as one, opened(make_store) as two:
        state = new_state()
        assert await one.create(state, lease=LeaseRequest("a", 0.6))
        assert await two.lease_holder(state.task_id) == "a"
        assert not await two.acquire_lease(state.task_id, "b", 0.6)
        assert await one.acquire_lease(state.task_id, "a", 0.6)  # the holder may renew
        assert await one.renew_leases([state.task_id], "a", 0.6) == {state.task_id}
        await one.release_lease(state.task_id, "b")  # not b's: nothing happens
        assert await two.lease_holder(state.task_id) == "a"
        await one.release_lease(state.task_id, "a")
        assert await two.lease_holder(state.task_id) is None
        assert await two.acquire_lease(state.task_id, "b", 0.3)
        deadline = time.monotonic() + 5
        while await one.lease_holder(state.task_id) is not None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert await one.acquire_lease(state.task_id, "a", 5)  # lapsed: free to take
        assert await two.renew_leases([state.task_id], "b", 5) == set()  # b learns it lost
        assert await one.renew_leases([], "a", 5) == set()


@async_test
async def test_lease_races_have_one_winner(make_store: StoreFactory) -> None:
    stores = [make_store() for _ in range(4)]
    for store in stores:
        await store.open()
    try:
        for _ in range(10):
            task_id = uuid.uuid4().hex
            won = await asyncio.gather(
                *(s.acquire_lease(task_id, f"owner{i}", 5) for i, s in enumerate(stores))
            )
            assert sum(won) == 1
    finally:
        for store in stores:
            await store.close()


@async_test
async def test_control_requests_are_taken_once(make_store: StoreFactory) -> None:
    async with opened(make_store) as one, opened(make_store) as two:
        state = await started(one)
        await two.request_control(state.task_id, "pause")
        taken = await asyncio.gather(
            one.take_controls([state.task_id]), one.take_controls([state.task_id])
        )
        assert sorted(taken, key=len) == [{}, {state.task_id: "pause"}]
        assert await one.take_controls([state.task_id]) == {}


@async_test
async def test_wait_changed_wakes_a_reader_on_another_instance(make_store: StoreFactory) -> None:
    async with opened(make_store) as writer, opened(make_store) as reader:
        state = await started(writer, outputs=0)
        await writer.flush()
        assert await reader.wait_changed(state.task_id, 0, 5)  # event 1 is already there
        assert not await reader.wait_changed(state.task_id, 1, 0.3)  # nothing new: times out

        async def write_later() -> None:
            await asyncio.sleep(0.2)
            await writer.append(state, "output", {"text": "news"})
            await writer.flush()

        _, changed = await asyncio.gather(write_later(), reader.wait_changed(state.task_id, 1, 5))
        assert changed  # woken by the write, not by the 5 s timeout
        head = await reader.peek(state.task_id)
        assert head is not None and head.last_event_id == 2


# Names a store may meet that are outside the id rule (`extension/ids.py`): upper case (one file
# with its lower-case twin on a case-insensitive disk), a dot, a colon (a Redis key of another
# kind), a trailing line end (`$` matches before it), over the length limit.
FOREIGN_IDS = ["Upper", "a.b", "a:b", "ab\n", "x" * 129]


async def plant(store: TaskStore, model_id: str, names: list[str]) -> None:
    """Put entries named `names` into the store's backing, copies of task `model_id`."""
    directory = getattr(store, "directory", None)
    if directory is not None:
        seed = {
            "progress": {
                "step": "s",
                "percentage": 10,
                "status": "running",
                "messages": [],
                "timestamp": "2024-01-01T00:00:00.000Z",
            },
            "outputs": [],
            "lastSaved": "2024-01-01T00:00:00.000Z",
        }
        for name in names:
            (directory / f"{name}.json").write_text(json.dumps({"taskId": name, **seed}))
        return
    client, prefix = store.client, store.keys.prefix  # type: ignore[attr-defined]
    fields = await client.hgetall(f"{prefix}task:{model_id}")
    for name in names:
        await client.hset(f"{prefix}task:{name}", mapping=fields)
        await client.zadd(f"{prefix}tasks", {name: 1})
        await client.sadd(f"{prefix}active", name)


@async_test
async def test_ids_outside_the_id_rule_are_refused_and_never_listed(
    make_store: StoreFactory,
) -> None:
    """Regression: the files store listed (and opened) any file name of letters, digits, `-`
    and `_`, which the API then refused as malformed; Redis built keys from any id."""
    async with opened(make_store) as store:
        state = await started(store)
        await store.save(state)
        for bad in ["", "../x", "a/b", "a*", *FOREIGN_IDS]:
            with pytest.raises(ValueError):
                await store.load(bad)
            with pytest.raises(ValueError):
                await store.peek(bad)
            with pytest.raises(ValueError):
                await store.delete(bad)
            with pytest.raises(ValueError):
                await events(store, bad)
            with pytest.raises(ValueError):
                await store.acquire_lease(bad, "me", 5)
            with pytest.raises(ValueError):
                await store.request_control(bad, "pause")
        await plant(store, state.task_id, FOREIGN_IDS)
    async with opened(make_store) as fresh:
        assert [row.task_id for row in await fresh.summaries()] == [state.task_id]
        assert [row.task_id for row in await fresh.unfinished()] == [state.task_id]


@async_test
async def test_a_seed_style_id_works_like_ours(make_store: StoreFactory) -> None:
    async with opened(make_store) as store:
        state = TaskState(task_id="abc123def456", request={"query": "q"}, owner="alice")
        assert await store.create(state)
        await store.append(state, "output", {"text": "one"})
        await store.save(state)
    async with opened(make_store) as fresh:
        assert [row.task_id for row in await fresh.summaries()] == ["abc123def456"]
        assert [e.type for e in await events(fresh, "abc123def456")] == ["output"]
        assert await fresh.acquire_lease("abc123def456", "me", 5)
        assert await fresh.delete("abc123def456")
        assert await fresh.load("abc123def456") is None


@async_test
async def test_hints_are_kept_for_the_next_store_and_names_are_checked(
    make_store: StoreFactory,
) -> None:
    async with opened(make_store) as store:
        assert await store.read_hint("task-summaries-0") is None
        await store.write_hint("task-summaries-0", b'{"a": 1}')
        await store.write_hint("task-summaries-0", b'{"a": 2}')  # replaces
        for name in ("../escape", "a:b", "Upper", "", "x" * 65, "tasks*"):
            with pytest.raises(ValueError, match="hint name"):
                await store.write_hint(name, b"x")
            with pytest.raises(ValueError, match="hint name"):
                await store.read_hint(name)
        assert await store.summaries() == []  # a hint is no task
    async with opened(make_store) as later:
        assert await later.read_hint("task-summaries-0") == b'{"a": 2}'


@async_test
async def test_peek_many_reads_each_task_as_peek_does(make_store: StoreFactory) -> None:
    done, live = new_state(), new_state()
    missing = uuid.uuid4().hex
    ids = [done.task_id, live.task_id, missing]
    async with opened(make_store) as store:
        for state in (done, live):
            assert await store.create(state)
            await store.append(state, "status", {"status": "running"})
        await store.append(done, "result", {"report": "# R", "sources": []})
        await store.append(done, "status", {"status": "completed"})
        await store.save(done, durable=True)
        await store.append(live, "output", {"text": "not flushed yet"})  # this store's live view
        for reader in (store, make_store()):  # the writer, and another server
            if reader is not store:
                await reader.open()
            many = await reader.peek_many(ids)
            assert list(many) == ids
            for task_id in ids:
                one = await reader.peek(task_id)
                got = many[task_id]
                assert (got is None) == (one is None) == (task_id == missing)
                if got is not None and one is not None:
                    assert got.info() == one.info()
            if reader is not store:
                await reader.close()
        finished = many[done.task_id]
        assert finished is not None and finished.result == {"report": "# R", "sources": []}
