"""The `redis` backend on a real redis-server: expiry through TTLs and the unfinished index."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from dr_testing.redis_server import INSTALL_HINT, redis_binary
from dr_testing.stores import async_test
from dr_testing.waiting import eventually
from jupyter_deepresearch.extension.store.base import TaskState, utcnow
from jupyter_deepresearch.extension.store.redis import RedisTaskStore

pytestmark = pytest.mark.skipif(redis_binary() is None, reason=INSTALL_HINT)


@pytest.fixture
def url(redis_url: str) -> str:
    """The session's redis-server with a key prefix of this test's own."""
    return f"{redis_url}?prefix=t{uuid.uuid4().hex[:8]}:"


@contextlib.asynccontextmanager
async def opened(url: str, retention: float = 0.0) -> AsyncIterator[RedisTaskStore]:
    store = RedisTaskStore(url, flush_interval=0.05, retention_seconds=retention)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def task_in(store: RedisTaskStore, status: str) -> TaskState:
    """A task with events and a checkpoint, saved with `status`."""
    state = TaskState(task_id=uuid.uuid4().hex, request={"query": "q"}, owner="alice")
    assert await store.create(state)
    if status == "queued":
        return state
    await store.append(state, "status", {"status": "running"})
    await store.append(state, "output", {"text": "chunk"})
    await store.save_checkpoint(state, "plan", {"queries": ["a"]})
    if status != "running":
        await store.append(state, "status", {"status": status})
    await store.save(state)
    return state


async def next_millisecond() -> datetime:
    """A moment in a later millisecond than any time stored before the call."""
    await asyncio.sleep(0.0011)  # sleeps at least this long, however busy the machine
    return utcnow()


async def pttls(store: RedisTaskStore, task_id: str) -> list[int]:
    """PTTL of the task's hash, events and checkpoints (-1: no expiry, -2: no such key)."""
    keys = (store.keys.task(task_id), store.keys.events(task_id), store.keys.checkpoints(task_id))
    return [await store.client.pttl(key) for key in keys]


async def active_ids(store: RedisTaskStore) -> set[str]:
    return {i.decode() for i in await store.client.smembers(store.keys.active)}


@async_test
async def test_a_finished_task_expires_by_itself(url: str) -> None:
    async with opened(url, retention=1.0) as store:
        finished = [await task_in(store, s) for s in ("completed", "failed", "cancelled")]
        running = await task_in(store, "running")
        for state in finished:
            assert all(0 < ttl <= 1000 for ttl in await pttls(store, state.task_id))
    ids = {state.task_id for state in finished}

    async with opened(url) as reader:  # no retention here: the expiry lives in Redis

        async def all_gone() -> bool:
            heads = [await reader.peek(task_id) for task_id in ids]
            return all(head is None for head in heads)

        await eventually(all_gone, timeout=20)
        assert {row.task_id for row in await reader.summaries()} == {running.task_id}
        for task_id in ids:
            assert await reader.load(task_id) is None
            assert await reader.client.zscore(reader.keys.tasks, task_id) is None
            assert await pttls(reader, task_id) == [-2, -2, -2]
        assert await pttls(reader, running.task_id) == [-1, -1, -1]
        assert await reader.load(running.task_id) is not None


@async_test
async def test_a_task_resumed_after_finishing_loses_its_expiry(url: str) -> None:
    async with opened(url, retention=3600) as store:
        state = await task_in(store, "completed")
        assert all(ttl > 0 for ttl in await pttls(store, state.task_id))

        await store.append(state, "status", {"status": "queued"})  # resumed in place
        await store.save(state)
        assert await pttls(store, state.task_id) == [-1, -1, -1]

        await store.append(state, "status", {"status": "completed"})
        await store.save(state)
        assert all(ttl > 0 for ttl in await pttls(store, state.task_id))
        await store.reset_run(state)  # restarted: a new run of a task that still says completed
        assert await pttls(store, state.task_id) == [-1, -2, -2]
        await store.append(state, "status", {"status": "queued"})
        await store.save(state)
        assert await pttls(store, state.task_id) == [-1, -1, -2]
        await store.save_checkpoint(state, "plan", {"queries": ["b"]})
        assert await pttls(store, state.task_id) == [-1, -1, -1]


@async_test
async def test_unfinished_tasks_and_retention_zero_have_no_expiry(url: str) -> None:
    async with opened(url, retention=1.0) as store:
        for status in ("queued", "running", "paused"):
            state = await task_in(store, status)
            ttls = await pttls(store, state.task_id)
            assert ttls == ([-1, -2, -2] if status == "queued" else [-1, -1, -1])
    async with opened(url) as keep_forever:
        done = await task_in(keep_forever, "completed")
        assert await pttls(keep_forever, done.task_id) == [-1, -1, -1]


@async_test
async def test_unfinished_lists_queued_running_and_paused_tasks_only(url: str) -> None:
    async with opened(url) as store:
        by_status = {
            s: await task_in(store, s)
            for s in ("queued", "running", "paused", "completed", "failed", "cancelled")
        }
    ids = {status: state.task_id for status, state in by_status.items()}
    unfinished = {ids["queued"], ids["running"], ids["paused"]}

    async with opened(url) as reader:
        assert await active_ids(reader) == unfinished  # kept by the writes themselves
        rows = await reader.unfinished()
        assert {row.task_id for row in rows} == unfinished
        assert [row.created_at for row in rows] == sorted(row.created_at for row in rows)

        assert await reader.delete(ids["paused"])
        assert await active_ids(reader) == {ids["queued"], ids["running"]}
        assert {row.task_id for row in await reader.unfinished()} == {
            ids["queued"],
            ids["running"],
        }

        running = by_status["running"]
        await reader.append(running, "status", {"status": "completed"})
        await reader.save(running)
        completed = by_status["completed"]
        await reader.append(completed, "status", {"status": "queued"})  # resumed
        await reader.save(completed)
        assert await active_ids(reader) == {ids["queued"], ids["completed"]}
        assert {row.task_id for row in await reader.unfinished()} == {
            ids["queued"],
            ids["completed"],
        }

        # Entries the index may be left with (a task gone by expiry, a race with a write) are
        # skipped and dropped when met.
        ghost = uuid.uuid4().hex
        await reader.client.sadd(reader.keys.active, ghost, ids["failed"])
        assert {row.task_id for row in await reader.unfinished()} == {
            ids["queued"],
            ids["completed"],
        }
        assert await active_ids(reader) == {ids["queued"], ids["completed"]}


@async_test
async def test_the_unfinished_index_is_built_for_tasks_stored_before_it(url: str) -> None:
    async with opened(url) as store:
        queued = await task_in(store, "queued")
        paused = await task_in(store, "paused")
        await task_in(store, "completed")
        # As a database written by an earlier version looks: no index at all.
        await store.client.delete(store.keys.active, store.keys.active_built)
        assert await store.unfinished() == []
    async with opened(url) as upgraded:
        rows = await upgraded.unfinished()
        assert {row.task_id for row in rows} == {queued.task_id, paused.task_id}


@async_test
async def test_expire_sweeps_many_untimed_tasks_in_a_few_round_trips(url: str) -> None:
    async with opened(url) as store:  # finished while no retention was configured
        old = []
        for _ in range(600):  # more than one script call's batch
            state = TaskState(task_id=uuid.uuid4().hex, request={"query": "q"})
            assert await store.create(state)
            await store.append(state, "status", {"status": "completed"})
            old.append(state)
        await store.flush()
        # Stored times keep milliseconds: start the cutoff's millisecond after the last old
        # task's, so no old task shares it (the sweep keeps tasks of the cutoff's millisecond).
        cutoff = await next_millisecond()
        recent = await task_in(store, "completed")
        running = await task_in(store, "running")

        calls = 0
        call = store._call

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return await call(*args, **kwargs)

        store._call = counted  # type: ignore[method-assign]
        removed = await store.expire(cutoff)
        store._call = call  # type: ignore[method-assign]
        assert sorted(removed) == sorted(state.task_id for state in old)
        assert calls <= 4  # listing, rows, deletes: not one round trip per task

        left = {row.task_id for row in await store.summaries()}
        assert left == {recent.task_id, running.task_id}
        for state in old[::100]:
            assert await pttls(store, state.task_id) == [-2, -2, -2]
        assert await store.expire(cutoff) == []
