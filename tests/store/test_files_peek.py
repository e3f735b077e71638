"""Reading a task's status never loads its history (`peek`), and stays fresh while it grows."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

from store_helpers import async_test, finish, new_state, opened

from jupyter_deepresearch.extension.models import Status
from jupyter_deepresearch.extension.store.files import FileTaskStore

N = 50_000


@async_test
async def test_fresh_store_reads_a_long_task_head_and_first_event_without_its_history(
    folder: Path,
) -> None:
    async with opened(folder) as store:
        state = new_state()
        assert await store.create(state)
        await store.append(state, "status", {"status": "running"})
        for i in range(N):
            await store.append(state, "output", {"text": f"line {i:06d} of the report"})
        await finish(store, state, report="# Report\n\nShort.")
    log_size = (folder / f"{state.task_id}.events.jsonl").stat().st_size
    snap_size = (folder / f"{state.task_id}.json").stat().st_size
    assert log_size > 3_000_000 and snap_size > 1_000_000

    fresh = FileTaskStore(folder)
    tracemalloc.start()
    try:
        head = await fresh.peek(state.task_id)
        stream = fresh.events(state.task_id, 0)
        first = await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]  # typed AsyncIterator, is a generator
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first.id == 1 and first.type == "status"
    assert head is not None
    info = head.info()
    assert info.status is Status.completed
    assert info.last_event_id == N + 3
    assert info.result is not None and info.result.report == "# Report\n\nShort."
    assert head.outputs == [] and head.checkpoints == {}
    assert peak < log_size / 10, (peak, log_size)
    # Heads are small: the full load (for resuming) still has every output.
    full = await fresh.load(state.task_id)
    assert full is not None and len(full.outputs) == N


@async_test
async def test_peek_follows_another_writer_and_folds_only_durable_news(folder: Path) -> None:
    async with opened(folder) as writer:
        state = new_state()
        assert await writer.create(state)
        await writer.append(state, "status", {"status": "running"})
        await writer.save(state)
        reader = FileTaskStore(folder)
        seen = await reader.peek(state.task_id)
        assert seen is not None and seen.status is Status.running and seen.last_event_id == 1
        for i in range(5):
            await writer.append(state, "progress", {"step": "search", "percentage": 10 * i})
        unflushed = await reader.peek(state.task_id)
        assert unflushed is not None and unflushed.last_event_id == 1  # not on disk yet
        await writer.flush()
        grown = await reader.peek(state.task_id)
        assert grown is not None and grown.last_event_id == 6 and grown.percentage == 40
        assert seen.last_event_id == 1  # an earlier answer is never changed afterwards
        await finish(writer, state)
        done = await reader.peek(state.task_id)
        assert done is not None and done.status is Status.completed
        assert done.result == {"report": "# R", "sources": []}
        assert await reader.peek("f" * 32) is None


@async_test
async def test_peek_many_reads_seed_files_and_ours_alike(folder: Path) -> None:
    folder.mkdir()
    seeds = sorted(Path(__file__).parent.glob("seed_tasks/*.json"))
    seed_ids = [p.stem for p in seeds if len(p.stem) == 32]
    for path in seeds:
        shutil.copy(path, folder / path.name)
    async with opened(folder) as store:
        ours = new_state()
        assert await store.create(ours)
        await finish(store, ours)
    ids = [*seed_ids, ours.task_id]
    async with opened(folder) as store:
        many = await store.peek_many(ids)
        async with opened(folder) as other:
            for task_id in ids:
                one = await other.peek(task_id)
                assert one is not None and many[task_id] is not None
                assert many[task_id].info() == one.info()
        assert many[ours.task_id].status is Status.completed
        assert len(seed_ids) >= 2
