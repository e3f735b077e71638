"""Damaged files: quarantined, logged, rebuilt from the log where one survives."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from store_helpers import async_test, collect, finish, opened, run_task, validate_snapshot

from jupyter_deepresearch.extension.models import Status
from jupyter_deepresearch.extension.store.files import FileTaskStore


def damage(kind: str, good: bytes, task_id: str) -> bytes:
    """The bytes of a snapshot damaged in one way."""
    doc = json.loads(good)
    return {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "binary": bytes(range(256)) * 4,
        "not-json": b"taskId: nope\n",
        "schema": json.dumps({**doc, "progress": {"status": "exploded"}}).encode(),
        "wrong-id": json.dumps({**doc, "taskId": "f" * 32}).encode(),
        "bad-types": json.dumps({**doc, "outputs": [1, 2], "lastEventId": "7"}).encode(),
    }[kind]


KINDS = ["truncated", "empty", "binary", "not-json", "schema", "wrong-id", "bad-types"]


@pytest.mark.parametrize("kind", KINDS)
@async_test
async def test_damaged_snapshot_is_quarantined_and_rebuilt(
    folder: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=6)
        await store.append(state, "output", {"text": "after the last snapshot"})
        await finish(store, state)
        healthy = await run_task(store, outputs=2)
        await store.save(healthy, durable=True)
    snap = folder / f"{state.task_id}.json"
    snap.write_bytes(damage(kind, snap.read_bytes(), state.task_id))
    caplog.set_level(logging.WARNING)
    store = FileTaskStore(folder)
    loaded = await store.load(state.task_id)
    assert loaded is not None
    for name in ("outputs", "status", "result", "checkpoints", "attempts", "last_event_id"):
        assert getattr(loaded, name) == getattr(state, name), name
    assert (loaded.request, loaded.owner) == (state.request, state.owner)
    assert loaded.finished_at is not None
    assert abs((loaded.finished_at - state.finished_at).total_seconds()) < 0.01
    assert len(list(folder.glob(f"{state.task_id}.json.corrupt-*"))) == 1
    assert any(state.task_id in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    validate_snapshot(json.loads(snap.read_bytes()))  # rewritten whole
    assert (await store.load(healthy.task_id)) is not None
    rows = {row.task_id: row.status for row in await store.summaries()}
    assert rows == {state.task_id: Status.completed, healthy.task_id: Status.running}


@async_test
async def test_damaged_snapshot_found_by_listing_is_repaired(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store)
        await finish(store, state)
    (folder / f"{state.task_id}.json").write_bytes(b"\x00\x00")
    rows = await FileTaskStore(folder).summaries()
    assert [(r.task_id, r.status) for r in rows] == [(state.task_id, Status.completed)]


@async_test
async def test_unrebuildable_task_is_quarantined_and_absent(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with opened(folder) as store:
        lost = await run_task(store)
        kept = await run_task(store)
        await store.save(kept)
        await store.flush()
    for suffix in (".events.jsonl", ".idx"):
        (folder / f"{lost.task_id}{suffix}").unlink()
    (folder / f"{lost.task_id}.json").write_text("{")
    store = FileTaskStore(folder)
    assert await store.load(lost.task_id) is None
    assert [r.task_id for r in await store.summaries()] == [kept.task_id]
    assert list(folder.glob(f"{lost.task_id}.json.corrupt-*"))
    assert any("cannot be rebuilt" in r.getMessage() for r in caplog.records)
    assert await store.load(kept.task_id) is not None


@async_test
async def test_missing_log_loads_from_snapshot_alone(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=3)
        await finish(store, state)
    (folder / f"{state.task_id}.events.jsonl").unlink()
    (folder / f"{state.task_id}.idx").unlink()
    store = FileTaskStore(folder)
    loaded = await store.load(state.task_id)
    assert loaded is not None and loaded.outputs == state.outputs
    events = await collect(store, state.task_id)
    assert [e.type for e in events][-2:] == ["result", "status"]
    assert events[-1].id == state.last_event_id  # ids still end where the clients saw them


@async_test
async def test_damaged_log_header_is_quarantined(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store)
        await finish(store, state)
    log = folder / f"{state.task_id}.events.jsonl"
    log.write_bytes(b"garbage\n" + log.read_bytes().split(b"\n", 1)[1])
    loaded = await FileTaskStore(folder).load(state.task_id)
    assert loaded is not None and loaded.outputs == state.outputs
    assert list(folder.glob(f"{state.task_id}.events.jsonl.corrupt-*"))


@async_test
async def test_torn_last_line_is_ignored_then_truncated_by_the_writer(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=3)
        await store.save(state)
    log = folder / f"{state.task_id}.events.jsonl"
    with open(log, "ab") as f:
        f.write(b'{"k":"e","id":8,"t":"output","ts":1.0,"d":{"te')
    async with opened(folder) as store:
        loaded = await store.load(state.task_id)
        assert loaded is not None and loaded.last_event_id == state.last_event_id
        assert [e.id for e in await collect(store, state.task_id)] == list(range(1, 8))
        await store.append(loaded, "output", {"text": "next"})
        await store.flush()
    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(raw) for raw in lines[:-1]]  # every line parses
    assert [r["id"] for r in records if r["k"] == "e"] == list(range(1, 9))


@pytest.mark.parametrize("how", ["missing", "garbage", "short", "other-run"])
@async_test
async def test_bad_index_never_gives_wrong_events(folder: Path, how: str) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=50)
        await store.save(state)
    idx = folder / f"{state.task_id}.idx"
    data = idx.read_bytes()
    if how == "missing":
        idx.unlink()
    elif how == "garbage":
        idx.write_bytes(data[:8] + os.urandom(len(data) - 8))
    elif how == "short":
        idx.write_bytes(data[: len(data) // 2 + 3])
    else:
        idx.write_bytes((99).to_bytes(8, "little") + data[8:])
    store = FileTaskStore(folder)
    for after in (0, 1, 40, 99, 100, 101, 500):
        ids = [e.id for e in await collect(store, state.task_id, after)]
        assert ids == list(range(after + 1, state.last_event_id + 1)), after
    async with opened(folder) as writer:  # the next writer repairs the index
        loaded = await writer.load(state.task_id)
        assert loaded is not None
        await writer.append(loaded, "output", {"text": "x"})
        await writer.flush()
    assert idx.stat().st_size == 8 * (1 + state.last_event_id + 1)


@async_test
async def test_restart_interrupted_before_its_snapshot(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=3)
        await finish(store, state)
        old_snapshot = (folder / f"{state.task_id}.json").read_bytes()
        await store.reset_run(state)
        await store.append(state, "status", {"status": "running"})
        await store.flush()
    (folder / f"{state.task_id}.json").write_bytes(old_snapshot)  # as if the crash came first
    store = FileTaskStore(folder)
    loaded = await store.load(state.task_id)
    assert loaded is not None
    assert (loaded.status, loaded.outputs, loaded.result) == (Status.running, [], None)
    assert loaded.run_first_event_id == state.run_first_event_id
    assert [e.id for e in await collect(store, state.task_id)] == [state.last_event_id]


CRASHER = textwrap.dedent(
    """
    import asyncio, os, signal, sys, uuid
    from jupyter_deepresearch.extension.store.base import TaskState
    from jupyter_deepresearch.extension.store.files import FileTaskStore

    async def main():
        store = FileTaskStore(sys.argv[1], flush_interval=0.02)
        await store.open()
        state = TaskState(task_id=uuid.uuid4().hex, request={"query": "q"})
        await store.create(state)
        await store.append(state, "status", {"status": "running"})
        for i in range(100000):
            await store.append(state, "output", {"text": "chunk %d " % i + "x" * (i % 300)})
            if i % 97 == 0:
                await store.save_checkpoint(state, "unit%d" % (i // 97), i)
            if i % 500 == 0:
                await store.save(state)
            if i == int(sys.argv[2]):
                await store.flush()
                print(state.last_event_id, flush=True)  # durable from here on
                for j in range(3):
                    await store.append(state, "output", {"text": "chunk %d " % (i + 1 + j)})
                os.kill(os.getpid(), signal.SIGKILL)
            if i % 50 == 0:
                await asyncio.sleep(0.001)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("kill_at", [700, 2300, 4100])
@async_test
async def test_killed_writer_leaves_a_consistent_task(folder: Path, kill_at: int) -> None:
    folder.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", CRASHER, str(folder), str(kill_at)],
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -9, proc.stderr
    flushed = int(proc.stdout)
    store = FileTaskStore(folder)
    [row] = await store.summaries()
    state = await store.load(row.task_id)
    assert state is not None
    events = await collect(store, row.task_id)
    assert [e.id for e in events] == list(range(1, state.last_event_id + 1))
    assert [e.data["text"] for e in events if e.type == "output"] == state.outputs
    assert state.outputs == [f"chunk {i} " + "x" * (i % 300) for i in range(len(state.outputs))]
    # Everything flushed survives; at most the unflushed window (3 events here) is lost.
    assert flushed <= state.last_event_id <= flushed + 3
    assert set(state.checkpoints) >= {f"unit{i}" for i in range(len(state.outputs) // 97)}
    for path in folder.glob("*.json"):
        validate_snapshot(json.loads(path.read_bytes()))


@async_test
async def test_lost_log_is_recreated_by_the_writer(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=2)
        await store.save(state)
        (folder / f"{state.task_id}.events.jsonl").unlink()
        (folder / f"{state.task_id}.idx").unlink()
        await store.append(state, "output", {"text": "after the loss"})
        await store.flush()
    loaded = await FileTaskStore(folder).load(state.task_id)
    assert loaded is not None and loaded.outputs == state.outputs


@async_test
async def test_task_deleted_elsewhere_is_not_brought_back(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=2)
        await store.flush()
        assert await FileTaskStore(folder).delete(state.task_id)  # another server
        await store.append(state, "output", {"text": "too late"})
        await store.flush()
        assert list(folder.iterdir()) == [folder / ".store.lock"]
        assert any("was deleted" in r.getMessage() for r in caplog.records)


@async_test
async def test_log_damaged_under_a_writer_is_set_aside_and_restarted(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=2)
        await store.save(state)
        log = folder / f"{state.task_id}.events.jsonl"
        log.write_bytes(b"garbage\n" + log.read_bytes().split(b"\n", 1)[1])
        await store.append(state, "output", {"text": "still recorded"})
        await store.flush()  # does not fail, now or on every later flush
        await store.append(state, "output", {"text": "and this"})
        await store.save(state)
    assert list(folder.glob(f"{state.task_id}.events.jsonl.corrupt-*"))
    assert any(state.task_id in r.getMessage() for r in caplog.records)
    loaded = await FileTaskStore(folder).load(state.task_id)
    assert loaded is not None and loaded.outputs == state.outputs
    ids = [
        e.id for e in await collect(FileTaskStore(folder), state.task_id, state.last_event_id - 2)
    ]
    assert ids == [state.last_event_id - 1, state.last_event_id]
