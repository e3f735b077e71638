"""Costs that must not grow with a task's length, and sizes that must not be cut."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from store_helpers import async_test, collect, finish, new_state, opened, run_task

from jupyter_deepresearch.extension.models import Status
from jupyter_deepresearch.extension.store import _atomic, files
from jupyter_deepresearch.extension.store import _journal as journal
from jupyter_deepresearch.extension.store.files import FileTaskStore
from jupyter_deepresearch.extension.store.seed_format import encode_snapshot, snapshot_parts

N = 50_000


async def long_task(folder: Path, n: int) -> str:
    async with opened(folder) as store:
        state = new_state()
        assert await store.create(state)
        for i in range(n):
            await store.append(state, "output", {"text": f"line {i:06d} of the report"})
        await store.save(state)
    return state.task_id


@async_test
async def test_append_only_buffers_and_costs_the_same_late_as_early(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[int] = []
    real = _atomic.write_all

    def counted_write_all(fd: int, data: bytes) -> None:
        writes.append(len(data))
        real(fd, data)

    monkeypatch.setattr(_atomic, "write_all", counted_write_all)
    async with opened(folder, flush_interval=3600) as store:
        state = new_state()
        await store.create(state)
        log = folder / f"{state.task_id}.events.jsonl"
        sizes = []
        for block in range(N // 1000):
            writes.clear()
            for i in range(1000):
                await store.append(state, "output", {"text": f"line {block * 1000 + i:06d}"})
            assert writes == []  # append itself touches no file
            before = log.stat().st_size
            await store.flush()
            sizes.append(log.stat().st_size - before)
            assert len(writes) == 2  # the log and its index, never the snapshot
    # Bytes recorded for events 49,001..50,000 vs 1,001..2,000: one more digit in each id.
    assert sizes[-1] - sizes[1] <= 1000 * 2


@async_test
async def test_first_event_comes_from_the_index_for_any_after(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = await long_task(folder, N)
    offsets: list[int] = []
    real = journal.read_events

    def spy(log_path: Path, offset: int, after: int, budget: int):
        offsets.append(offset)
        return real(log_path, offset, after, budget)

    monkeypatch.setattr(journal, "read_events", spy)
    store = FileTaskStore(folder)
    log = folder / f"{task_id}.events.jsonl"
    timings = {}
    for after in (0, 10, 25_000, N - 10):
        offsets.clear()
        start = time.perf_counter()
        stream = store.events(task_id, after)
        first = await stream.__anext__()
        timings[after] = time.perf_counter() - start
        await stream.aclose()  # type: ignore[attr-defined]  # typed AsyncIterator, is a generator
        assert first.id == after + 1
        assert len(offsets) == 1  # one bounded read, not the whole log
        with open(log, "rb") as f:  # it seeked straight to the event's line
            f.seek(offsets[0])
            assert f.readline().startswith(b'{"k":"e","id":%d,' % (after + 1))
    assert max(timings.values()) < 0.5, timings  # ~0.5 ms each when the machine is quiet


@async_test
async def test_streaming_a_long_log_reads_in_bounded_batches(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = await long_task(folder, N)
    batches: list[int] = []
    real = journal.read_events

    def spy(log_path: Path, offset: int, after: int, budget: int):
        events, nxt, end = real(log_path, offset, after, budget)
        batches.append(len(events))
        return events, nxt, end

    monkeypatch.setattr(journal, "read_events", spy)
    ids = [e.id for e in await collect(FileTaskStore(folder), task_id, 0)]
    assert ids == list(range(1, N + 1))
    assert len(batches) > 5 and max(batches) < N / 5


@async_test
async def test_five_megabytes_of_output_survive_whole(folder: Path) -> None:
    big = ["€" * 500_000 + str(i) for i in range(4)] + ["x" * 3_000_000] + ["small"] * 100
    async with opened(folder) as store:
        state = await run_task(store, outputs=0)
        for text in big:
            await store.append(state, "output", {"text": text})
        await finish(store, state, report="".join(big))
    store = FileTaskStore(folder)
    loaded = await store.load(state.task_id)
    assert loaded is not None and loaded.outputs == big
    assert loaded.result is not None and loaded.result["report"] == "".join(big)
    assert [
        e.data["text"] for e in await collect(store, state.task_id) if e.type == "output"
    ] == big


@async_test
async def test_listing_ten_thousand_tasks_reads_only_their_heads(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder.mkdir()
    for i in range(10_000):
        state = new_state(f"{i:032x}")
        state.outputs = ["o" * 2000] * 4
        state.status = Status.completed if i % 2 else Status.paused
        (folder / f"{state.task_id}.json").write_bytes(
            encode_snapshot(*snapshot_parts(state, state.created_at))
        )
    store = FileTaskStore(folder)
    monkeypatch.setattr(files, "load_task", None)  # a whole-file load would fail the test
    start = time.perf_counter()
    rows = await store.summaries()
    elapsed = time.perf_counter() - start
    assert len(rows) == 10_000
    assert sum(r.status is Status.completed for r in rows) == 5_000
    assert elapsed < 10.0, elapsed  # ~0.3 s on a quiet machine (bench/bench_event_store.py)


@async_test
async def test_cache_of_inactive_tasks_is_bounded_and_fresh(folder: Path) -> None:
    async with opened(folder) as store:
        done = []
        for _ in range(6):
            state = await run_task(store, outputs=1)
            await finish(store, state)
            done.append(state)
        running = await run_task(store)
        await store.save(running)
    async with opened(folder, cache_size=3) as store:
        for state in done:
            assert await store.load(state.task_id) is not None
        assert len(store._cache) == 3
        live = await store.load(running.task_id)
        assert live is not None
        await store.append(live, "output", {"text": "mine now"})  # the manager drives it
        for state in done:
            await store.load(state.task_id)
        assert await store.load(running.task_id) is live  # never evicted while it is written
        first = await store.load(done[-1].task_id)
        assert await store.load(done[-1].task_id) is first  # a cache hit
        async with opened(folder) as other:  # another server resumes it
            theirs = await other.load(done[-1].task_id)
            assert theirs is not None
            await other.append(theirs, "status", {"status": "running"})
            await other.save(theirs)
        again = await store.load(done[-1].task_id)
        assert again is not None and again.status is Status.running
