"""The `files` store's core contract: create, append, save, load, events, restart, delete."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from store_helpers import async_test, collect, new_state, opened, run_task, validate_snapshot

from jupyter_deepresearch.extension.models import Status
from jupyter_deepresearch.extension.store import _journal as journal
from jupyter_deepresearch.extension.store.base import utcnow
from jupyter_deepresearch.extension.store.files import FileTaskStore
from jupyter_deepresearch.extension.store.seed_format import snapshot_parts


@async_test
async def test_create_is_exclusive_and_writes_seed_format(folder: Path) -> None:
    async with opened(folder) as store:
        state = new_state()
        assert await store.create(state)
        assert not await store.create(new_state(state.task_id))
        doc = json.loads((store.directory / f"{state.task_id}.json").read_bytes())
        validate_snapshot(doc)
        assert doc["taskId"] == state.task_id
        assert doc["progress"]["status"] == "queued"
        assert doc["outputs"] == []
        assert doc["request"] == state.request


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"version": 2}, ["version"]),
        ({"createdAt": None}, ["createdAt"]),
        ({"updatedAt": "yesterday"}, ["updatedAt"]),
        ({"lastSaved": "2025-13-01T00:00:00Z"}, ["lastSaved"]),
        ({"status": "lost"}, ["status"]),
        ({"result": {"sources": []}}, ["result"]),
        ({"runFirstEventId": 0}, ["runFirstEventId"]),
        ({"attempts": None}, []),  # removed: a file with `version` has all our fields
        ({"progress": {"step": "", "percentage": 101}}, ["progress"]),
    ],
)
def test_schema_rejects_what_we_never_write(change: dict[str, Any], path: list[str]) -> None:
    """The schema derived from the loader's model keeps the rules of the files we write."""
    head, body = snapshot_parts(new_state(), utcnow())
    doc = {**head, **body, "result": {"report": "r", "sources": []}}
    validate_snapshot(doc)
    doc.update(change)
    if change == {"attempts": None}:
        del doc["attempts"]
    with pytest.raises(jsonschema.ValidationError) as raised:
        validate_snapshot(doc)
    assert list(raised.value.absolute_path)[:1] == path


@async_test
async def test_events_ids_are_consecutive_and_resume_after(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=5)
        events = await collect(store, state.task_id)  # part buffered, part on disk
        assert [e.id for e in events] == list(range(1, state.last_event_id + 1))
        await store.flush()
        assert [e.id for e in await collect(store, state.task_id, after=4)] == list(
            range(5, state.last_event_id + 1)
        )
        assert await collect(store, state.task_id, after=state.last_event_id) == []


@async_test
async def test_append_does_not_rewrite_snapshot(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=1)
        snap = store.directory / f"{state.task_id}.json"
        before = snap.stat().st_mtime_ns, snap.read_bytes()
        for i in range(50):
            await store.append(state, "output", {"text": f"more {i}"})
        await store.flush()
        assert (snap.stat().st_mtime_ns, snap.read_bytes()) == before


@async_test
async def test_background_flush_within_interval(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=2)
        log = store.directory / f"{state.task_id}.events.jsonl"
        await asyncio.sleep(0.3)
        ids = [json.loads(line).get("id") for line in log.read_text().splitlines()]
        assert ids[-1] == state.last_event_id


@async_test
async def test_reload_in_new_store_rebuilds_full_state(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=4)
        await store.append(state, "result", {"report": "# R", "sources": []})
        await store.append(state, "status", {"status": "completed"})
        await store.save(state, durable=True)
        other = FileTaskStore(store.directory)
        loaded = await other.load(state.task_id)
        assert loaded is not None
        assert loaded.status is Status.completed
        assert loaded.outputs == state.outputs
        assert loaded.result == {"report": "# R", "sources": []}
        assert loaded.checkpoints == {"plan": {"queries": ["a", "b"]}}
        assert loaded.attempts == 1
        assert loaded.last_event_id == state.last_event_id
        assert loaded.finished_at == state.finished_at or loaded.finished_at is not None
        assert [e.id for e in await collect(other, state.task_id)] == list(range(1, 12))


@async_test
async def test_log_beyond_snapshot_is_replayed(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=2)
        for i in range(10):
            await store.append(state, "output", {"text": f"late {i}"})
        await store.save_checkpoint(state, "search:0", "done")
        state.attempts = 2
        await store.save(state)
        for i in range(5):
            await store.append(state, "output", {"text": f"later {i}"})
        await store.flush()  # flushed, but no snapshot written after these
        loaded = await FileTaskStore(store.directory).load(state.task_id)
        assert loaded is not None
        assert loaded.outputs == state.outputs
        assert loaded.last_event_id == state.last_event_id
        assert loaded.checkpoints == state.checkpoints
        assert loaded.attempts == 2


@async_test
async def test_a_new_turn_flushed_before_its_save_keeps_its_attempt(folder: Path) -> None:
    """Found by the chaos run: "running" reached the log in a group commit before the save
    that logged the attempt, and a crash right then let the next turn count from 0 again."""
    async with opened(folder) as store:
        state = await run_task(store, outputs=1)
        assert state.attempts == 1
        state.attempts += 1  # what the runner does for a new turn, as it appends "running"
        await store.append(state, "status", {"status": "running"})
        await store.flush()  # the group commit; the server then dies before its save
        loaded = await FileTaskStore(store.directory).load(state.task_id)
        assert loaded is not None
        assert (loaded.status, loaded.attempts) == (Status.running, 2)


@async_test
async def test_load_returns_the_managers_object(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store)
        assert await store.load(state.task_id) is state


@async_test
async def test_reset_run_keeps_counting_ids(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=3)
        old_last = state.last_event_id
        await store.reset_run(state)
        assert state.outputs == [] and state.checkpoints == {} and state.result is None
        assert state.run_first_event_id == old_last + 1
        await store.append(state, "status", {"status": "running"})
        await store.append(state, "output", {"text": "fresh"})
        await store.flush()
        events = await collect(store, state.task_id)
        assert [e.id for e in events] == [old_last + 1, old_last + 2]
        assert [e.id for e in await collect(store, state.task_id, after=3)] == [
            old_last + 1,
            old_last + 2,
        ]
        loaded = await FileTaskStore(store.directory).load(state.task_id)
        assert loaded is not None
        assert loaded.outputs == ["fresh"]
        assert loaded.checkpoints == {}
        assert loaded.run_first_event_id == old_last + 1


@async_test
async def test_delete_removes_every_file(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store)
        await store.flush()
        keep = await run_task(store)
        assert await store.delete(state.task_id)
        assert not list(store.directory.glob(f"{state.task_id}*"))
        assert await store.load(state.task_id) is None
        assert not await store.delete(state.task_id)
        assert await store.load(keep.task_id) is keep


@async_test
async def test_summaries_list_every_task(folder: Path) -> None:
    async with opened(folder) as store:
        states = [await run_task(store) for _ in range(3)]
        await store.save(states[0])
        rows = {row.task_id: row for row in await FileTaskStore(store.directory).summaries()}
        assert set(rows) == {s.task_id for s in states}
        assert rows[states[0].task_id].status is Status.running
        assert rows[states[0].task_id].owner == "alice"


@async_test
async def test_readers_racing_the_flusher_see_no_gap_and_no_duplicate(folder: Path) -> None:
    async with opened(folder, flush_interval=0.001) as store:
        state = await run_task(store, outputs=1)
        readers_done = 0

        async def write() -> None:
            i = 0
            while readers_done < 3 and i < 5000:
                await store.append(state, "output", {"text": f"{i}"})
                i += 1
                if i % 7 == 0:
                    await asyncio.sleep(0)

        async def read(after: int) -> None:
            nonlocal readers_done
            for _ in range(15):
                known = state.last_event_id
                ids = [e.id for e in await collect(store, state.task_id, after)]
                assert ids == list(range(after + 1, after + 1 + len(ids)))  # no gap, no duplicate
                assert len(ids) >= known - after  # nothing appended before the call is missed
            readers_done += 1

        await asyncio.gather(write(), read(0), read(3), read(50))


@async_test
async def test_another_server_tails_the_log_live(folder: Path) -> None:
    async with opened(folder) as writer, opened(folder) as reader:
        state = await run_task(writer, outputs=2)
        await writer.flush()
        seen = [e.id for e in await collect(reader, state.task_id)]
        assert seen == list(range(1, state.last_event_id + 1))
        for i in range(5):
            await writer.append(state, "output", {"text": f"live {i}"})
        await asyncio.sleep(0.3)  # within a flush interval or so
        more = [e.id for e in await collect(reader, state.task_id, seen[-1])]
        assert more == list(range(seen[-1] + 1, state.last_event_id + 1))
        loaded = await reader.load(state.task_id)
        assert loaded is not None and loaded.outputs == state.outputs


@async_test
async def test_events_flushed_while_a_reader_reads_are_not_missed(folder: Path) -> None:
    async with opened(folder, flush_interval=3600) as store:
        state = await run_task(store, outputs=3)
        await store.flush()
        for i in range(4):
            await store.append(state, "output", {"text": f"buffered {i}"})
        real_io = store._io
        flushes: list[int] = []

        async def io(fn, *args, **kwargs):
            result = await real_io(fn, *args, **kwargs)
            if fn is journal.read_events and result[2] and len(flushes) < 1:
                flushes.append(1)  # the moment between the reader's disk pass and its buffer look
                await store.flush()
            return result

        store._io = io
        ids = [e.id for e in await collect(store, state.task_id, 2)]
        assert flushes and ids == list(range(3, state.last_event_id + 1))
