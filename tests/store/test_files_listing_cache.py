"""Listing tasks again reads only the snapshots that changed since the last listing, in this
process or (through `.cache/listing`) in any earlier one; `unfinished()` never misses a task.

Snapshots written just now are "racy" (a rewrite in the same clock tick could keep their stamp)
and are never cached, so tests that want a row cached first move the files' times an hour back
(`age`), keeping their order, as if they had been written long ago.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from store_helpers import async_test, finish, new_state, opened, run_task

from jupyter_deepresearch.extension.models import Status
from jupyter_deepresearch.extension.store import _folder as store_folder
from jupyter_deepresearch.extension.store import _listing
from jupyter_deepresearch.extension.store._atomic import atomic_write
from jupyter_deepresearch.extension.store.base import TaskState
from jupyter_deepresearch.extension.store.files import FileTaskStore

HOUR_NS = 3600 * 10**9


def age(directory: Path, by_ns: int = HOUR_NS) -> None:
    """Move every task file's mtime back by the same amount (their order stays)."""
    for path in directory.iterdir():
        if not path.name.startswith("."):
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns - by_ns, st.st_mtime_ns - by_ns))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Ids of the snapshot heads read from disk by listings, in order."""
    seen: list[str] = []
    real = store_folder.read_summary

    def counting(head: bytes, task_id: str) -> object:
        seen.append(task_id)
        return real(head, task_id)

    monkeypatch.setattr(store_folder, "read_summary", counting)
    return seen


async def write_tasks(directory: Path, statuses: list[Status]) -> list[TaskState]:
    """Tasks with these statuses, written (and closed) by a store of their own."""
    states = []
    async with opened(directory) as writer:
        for status in statuses:
            state = new_state()
            assert await writer.create(state)
            if status is not Status.queued:
                await writer.append(state, "status", {"status": status.value})
            await writer.save(state, durable=True)
            states.append(state)
    return states


@async_test
async def test_second_listing_reads_only_changed_snapshots(
    tmp_path: Path, reads: list[str]
) -> None:
    directory = tmp_path / "tasks"
    states = await write_tasks(directory, [Status.completed] * 3)
    age(directory)
    reader = FileTaskStore(directory)
    assert len(await reader.summaries()) == 3
    assert sorted(reads) == sorted(s.task_id for s in states)
    reads.clear()
    assert len(await reader.summaries()) == 3
    assert reads == []  # nothing changed: no snapshot opened

    async with opened(directory) as writer:
        changed = await writer.load(states[0].task_id)
        assert changed is not None
        await writer.append(changed, "output", {"text": "more"})
        await writer.save(changed, durable=True)
        assert await writer.delete(states[1].task_id)
    rows = {row.task_id: row for row in await reader.summaries()}
    assert reads == [states[0].task_id]
    assert set(rows) == {states[0].task_id, states[2].task_id}


@async_test
async def test_new_store_reads_no_head_the_listing_file_vouches_for(
    folder: Path, reads: list[str]
) -> None:
    statuses = [Status.completed] * 4 + [Status.queued, Status.running, Status.paused]
    states = await write_tasks(folder, statuses)
    age(folder)
    async with opened(folder) as first:
        assert len(await first.summaries()) == len(states)
    assert len(reads) == len(states)
    assert len(_listing.load(folder)) == len(states)

    reads.clear()
    async with opened(folder) as second:  # a new process, as after a restart
        unfinished = {row.task_id: row.status for row in await second.unfinished()}
        health = await second.health()
        rows = {row.task_id: row.status for row in await second.summaries()}
    assert reads == []
    assert rows == {s.task_id: status for s, status in zip(states, statuses, strict=True)}
    assert unfinished == {t: s for t, s in rows.items() if not s.terminal}
    assert health["tasks"] == len(states) and health["by_status"]["completed"] == 4


@async_test
async def test_snapshot_changed_by_another_store_is_read_again(
    folder: Path, reads: list[str]
) -> None:
    states = await write_tasks(folder, [Status.running, Status.completed, Status.completed])
    age(folder)
    reader = FileTaskStore(folder)
    assert {r.task_id for r in await reader.unfinished()} == {states[0].task_id}
    await reader.close()  # saves the listing file
    async with opened(folder) as other:  # another server finishes one task, resumes another
        done = await other.load(states[0].task_id)
        resumed = await other.load(states[1].task_id)
        assert done is not None and resumed is not None
        await finish(other, done)
        await other.append(resumed, "status", {"status": "queued"})
        await other.save(resumed)
    reads.clear()
    for store in (reader, FileTaskStore(folder)):  # the same instance, and a new one
        rows = {r.task_id: r.status for r in await store.summaries()}
        assert sorted(reads) == sorted([states[0].task_id, states[1].task_id])
        assert rows[states[0].task_id] is Status.completed
        assert rows[states[1].task_id] is Status.queued
        assert [r.task_id for r in await store.unfinished()] == [states[1].task_id]
        reads.clear()


@async_test
async def test_racy_same_size_rewrite_in_place_is_caught(folder: Path) -> None:
    # The worst case for a stamp: the same file (inode) rewritten in place, in the same clock
    # tick, at the same size. Only the "racy" rule catches it: a row read while its snapshot
    # was young is not trusted next time.
    [state] = await write_tasks(folder, [Status.queued])
    snap = folder / f"{state.task_id}.json"
    reader = FileTaskStore(folder)
    assert [r.status for r in await reader.unfinished()] == [Status.queued]
    await reader.close()
    before = snap.stat()
    data = snap.read_bytes()
    with open(snap, "r+b") as f:  # the first line (the head) only
        f.write(data.replace(b'"status":"queued"', b'"status":"failed"', 1))
    os.utime(snap, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = snap.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    assert [r.status for r in await reader.summaries()] == [Status.failed]
    assert [r.status for r in await FileTaskStore(folder).summaries()] == [Status.failed]


@async_test
async def test_replaced_snapshot_with_same_time_and_size_is_caught(
    folder: Path, reads: list[str]
) -> None:
    # A settled row is trusted while (inode, mtime, size) holds; a snapshot is always replaced
    # by rename, so even a replacement with the same mtime and size has another inode.
    [state] = await write_tasks(folder, [Status.queued])
    age(folder)
    snap = folder / f"{state.task_id}.json"
    reader = FileTaskStore(folder)
    assert [r.status for r in await reader.summaries()] == [Status.queued]
    await reader.close()
    before = snap.stat()
    atomic_write(snap, snap.read_bytes().replace(b'"status":"queued"', b'"status":"paused"', 1))
    os.utime(snap, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert snap.stat().st_size == before.st_size
    reads.clear()
    assert [r.status for r in await reader.summaries()] == [Status.paused]
    assert [r.status for r in await FileTaskStore(folder).unfinished()] == [Status.paused]
    assert reads == [state.task_id, state.task_id]


@pytest.mark.parametrize(
    "content",
    [
        b"{\x00\x00 not json",
        b"",
        b'{"version": 99, "rows": []}',
        b'{"version": 1, "rows": [["../evil", 1, 2, 3, "completed", null, "x", "y", null, null]]}',
        b'{"version": 1, "rows": [[1, 2, 3]]}',
        b'{"version": 1, "rows": {"a": 1}}',
        b"[1, 2]",
    ],
)
@async_test
async def test_damaged_or_foreign_listing_file_is_ignored_and_replaced(
    folder: Path, reads: list[str], content: bytes
) -> None:
    states = await write_tasks(folder, [Status.completed, Status.paused])
    age(folder)
    (folder / _listing.NAME).parent.mkdir(exist_ok=True)
    (folder / _listing.NAME).write_bytes(content)
    assert _listing.load(folder) == {}
    async with opened(folder) as store:
        rows = {r.task_id: r.status for r in await store.summaries()}
        assert [r.task_id for r in await store.unfinished()] == [states[1].task_id]
    assert rows == {states[0].task_id: Status.completed, states[1].task_id: Status.paused}
    assert sorted(reads) == sorted(s.task_id for s in states)
    assert set(_listing.load(folder)) == set(rows)  # rewritten whole
    json.loads((folder / _listing.NAME).read_bytes())


@async_test
async def test_listing_file_with_a_wrong_row_for_an_old_stamp_is_harmless(
    folder: Path, reads: list[str]
) -> None:
    # Rows are keyed by the stamp their head was read at: one that does not match is re-read.
    [state] = await write_tasks(folder, [Status.running])
    age(folder)
    async with opened(folder) as store:
        await store.summaries()
    heads = _listing.load(folder)
    (ino, mtime, size), row = heads[state.task_id]
    lie = dataclasses.replace(row, status=Status.completed)
    _listing.save(folder, {state.task_id: ((ino, mtime - 1, size), lie)})
    reads.clear()
    assert [r.status for r in await FileTaskStore(folder).unfinished()] == [Status.running]
    assert reads == [state.task_id]


@async_test
async def test_seed_like_and_empty_folders_get_no_listing_file(folder: Path) -> None:
    folder.mkdir()
    async with opened(folder) as store:
        assert await store.unfinished() == []
        assert (await store.health())["tasks"] == 0
    assert not (folder / _listing.NAME).exists()
    # Only young snapshots: nothing is settled enough to cache, so nothing is written either.
    await write_tasks(folder, [Status.completed])
    async with opened(folder) as store:
        assert len(await store.summaries()) == 1
    assert not (folder / _listing.NAME).exists()


@async_test
async def test_unfinished_sees_a_resume_the_snapshot_does_not_show_yet(
    folder: Path,
) -> None:
    # A crash between the log's write and the snapshot's: the log says queued, the snapshot
    # (cached as settled, and vouched for by the listing file) still says failed.
    states = await write_tasks(folder, [Status.failed, Status.completed])
    age(folder)
    async with opened(folder) as store:
        assert await store.unfinished() == []
    async with opened(folder) as writer:
        state = await writer.load(states[0].task_id)
        assert state is not None
        await writer.append(state, "status", {"status": "queued"})
        await writer.flush()  # the log only: the "crash" comes before the snapshot
        writer.detach(state.task_id)
    for store in (FileTaskStore(folder), FileTaskStore(folder)):
        rows = await store.unfinished()
        assert [(r.task_id, r.status) for r in rows] == [(states[0].task_id, Status.queued)]


@async_test
async def test_unfinished_never_misses_a_task_another_store_writes(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another server moves tasks between every status, saving the snapshot or (a crash after
    # the log's write) not; listings by a long-lived reader and by new readers (which start
    # from the listing file) always hold every task that is queued, running or paused.
    # (Each pass scans: the reuse of a scan under a second old is covered below.)
    monkeypatch.setattr(_listing, "REUSE_SECONDS", -1.0)
    rng = random.Random(6)
    choices = [Status.queued, Status.running, Status.paused, Status.completed, Status.failed]
    choices.append(Status.cancelled)
    truth: dict[str, Status] = {}
    reader = FileTaskStore(folder)
    async with opened(folder) as writer:
        states = []
        for _ in range(12):
            state = new_state()
            assert await writer.create(state)
            states.append(state)
            truth[state.task_id] = Status.queued
        for step in range(120):
            state = rng.choice(states)
            status = rng.choice([s for s in choices if s is not state.status])
            snapshot_too = rng.random() < 0.7
            if not snapshot_too or rng.random() < 0.3:
                # Settle everything (cached from now on). A log written after a snapshot is
                # then later in time, as on any disk where the two writes are a tick apart.
                age(folder)
            await writer.append(state, "status", {"status": status.value})
            if snapshot_too:
                await writer.save(state)
            else:
                await writer.flush()
            truth[state.task_id] = status
            store = reader if step % 2 else FileTaskStore(folder)
            listed = {r.task_id: r.status for r in await store.unfinished()}
            wanted = {t: s for t, s in truth.items() if not s.terminal}
            assert listed == wanted, step
            if step % 10 == 0:
                await store.close()  # saves the listing file for the next new reader
    await reader.close()


@async_test
async def test_listing_is_saved_from_a_worker_thread_at_most_once_per_interval(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saves: list[int] = []
    real = _listing.save

    def counting(directory: Path, heads: store_folder.HeadCache) -> None:
        saves.append(len(heads))
        real(directory, heads)

    monkeypatch.setattr(_listing, "save", counting)
    await write_tasks(folder, [Status.completed] * 3)
    age(folder)
    store = FileTaskStore(folder)
    await store.summaries()
    await store.close()
    assert saves == [3]
    async with opened(folder) as writer:
        state = await run_task(writer)
        await finish(writer, state)
    age(folder)
    await store.summaries()  # a change, but the last save is too recent: kept for later
    await store.summaries()
    assert saves == [3]
    await store.close()  # the change is saved on close
    assert saves == [3, 4]
    await store.close()
    assert saves == [3, 4]


@async_test
async def test_listings_asked_together_share_scans_that_start_after_the_ask(
    folder: Path,
) -> None:
    # While a scan runs, summaries() asked meanwhile share one scan that starts after it (so
    # they see a task created before they asked); unfinished() and health() take the running
    # one (a takeover pass comes again; counts are a snapshot anyway).
    [first] = await write_tasks(folder, [Status.queued])
    reader = FileTaskStore(folder)
    entered, gate = threading.Event(), threading.Event()
    scans: list[int] = []
    real = reader._listing.scan

    def gated() -> store_folder.Scan:
        scans.append(len(scans))
        found = real()
        if len(scans) == 1:  # the first scan has read the folder; it finishes once let go
            entered.set()
            assert gate.wait(30)
        return found

    reader._listing.scan = gated  # type: ignore[method-assign]
    held = asyncio.create_task(reader.summaries())
    assert await asyncio.to_thread(entered.wait, 30)
    [second] = await write_tasks(folder, [Status.running])  # another server, meanwhile
    waiting: list[asyncio.Task[Any]] = [  # results of three types
        asyncio.create_task(reader.summaries()),
        asyncio.create_task(reader.unfinished()),
        asyncio.create_task(reader.health()),
        asyncio.create_task(reader.summaries()),
    ]
    cancelled = asyncio.create_task(reader.summaries())
    await asyncio.sleep(0.01)
    cancelled.cancel()  # one caller giving up leaves the shared scan to the others
    gate.set()
    listed, later, unfinished, health, again = await asyncio.gather(held, *waiting)
    assert {r.task_id for r in listed} == {first.task_id}
    assert {r.task_id for r in later} == {r.task_id for r in again}
    assert {r.task_id for r in later} == {first.task_id, second.task_id}
    assert [r.task_id for r in unfinished] == [first.task_id]  # from the scan in progress
    assert health["tasks"] == 1
    assert scans == [0, 1]
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await reader.close()


@async_test
async def test_a_task_let_go_while_a_shared_scan_runs_is_counted_as_it_is_now(
    folder: Path,
) -> None:
    # The scan read the running task's snapshot; the task then finished here and left the
    # store's writers. Joining that scan, health() and unfinished() still see it finished.
    async with opened(folder) as store:
        state = await run_task(store)
        await store.save(state)
        entered, gate = threading.Event(), threading.Event()
        real = store._listing.scan

        def gated() -> store_folder.Scan:
            found = real()
            entered.set()
            assert gate.wait(30)
            return found

        store._listing.scan = gated
        held = asyncio.create_task(store.unfinished())
        assert await asyncio.to_thread(entered.wait, 30)
        await finish(store, state)
        assert state.task_id not in store._entries  # let go: only the files know it now
        joined = [asyncio.create_task(store.health()), asyncio.create_task(store.unfinished())]
        await asyncio.sleep(0.01)
        gate.set()
        first, health, unfinished = await asyncio.gather(held, *joined)
        assert health["by_status"]["completed"] == 1 and health["by_status"]["running"] == 0
        assert first == unfinished == []  # the one that asked first learns it too


@async_test
async def test_a_recent_scan_of_an_unchanged_folder_serves_health_and_takeover(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # unfinished() and health() take the last scan while it is under a second old and no name
    # in the folder was created, removed or renamed since; summaries() always scans anew.
    states = await write_tasks(folder, [Status.completed, Status.paused])
    age(folder)
    async with opened(folder) as first:  # leaves the listing file: the next store saves none
        await first.summaries()
    st = folder.stat()
    os.utime(folder, ns=(st.st_atime_ns - HOUR_NS, st.st_mtime_ns - HOUR_NS))  # settled
    store = FileTaskStore(folder)
    scans: list[int] = []
    real = store._listing.scan

    def counted() -> store_folder.Scan:
        scans.append(1)
        return real()

    store._listing.scan = counted  # type: ignore[method-assign]
    assert [r.task_id for r in await store.unfinished()] == [states[1].task_id]
    assert (await store.health())["tasks"] == 2
    assert [r.task_id for r in await store.unfinished()] == [states[1].task_id]
    assert len(scans) == 1
    assert len(await store.summaries()) == 2
    assert len(scans) == 2

    async with opened(folder) as other:  # another server resumes the paused task
        resumed = await other.load(states[1].task_id)
        assert resumed is not None
        await other.append(resumed, "status", {"status": "queued"})
        await other.save(resumed)
    assert [r.status for r in await store.unfinished()] == [Status.queued]  # renamed: rescanned
    assert len(scans) == 3

    monkeypatch.setattr(_listing, "REUSE_SECONDS", 0.0)  # as if a second had passed
    await store.health()
    assert len(scans) == 4
    await store.close()


def age_folder(directory: Path) -> None:
    """`age` for the files and the folder itself: as if nothing had changed for an hour."""
    age(directory)
    st = directory.stat()
    os.utime(directory, ns=(st.st_atime_ns - HOUR_NS, st.st_mtime_ns - HOUR_NS))


@async_test
async def test_listing_reuses_a_settled_scan_and_still_shows_every_change(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another server creates, moves, restarts and deletes tasks as the manager does (a
    # finished task changes only by a restart); a long-lived reader's `listing()` always shows
    # every task with its status, and serves most listings without scanning the folder again.
    scans: list[int] = []
    real_scan = _listing.Listing.scan

    def counting(self: _listing.Listing) -> store_folder.Scan:
        scans.append(1)
        return real_scan(self)

    monkeypatch.setattr(_listing.Listing, "scan", counting)
    rng = random.Random(11)
    truth: dict[str, Status] = {}
    reader = FileTaskStore(folder)
    listings = log_only = 0
    async with opened(folder) as writer:
        states: dict[str, TaskState] = {}
        for _ in range(8):
            state = new_state()
            assert await writer.create(state)
            states[state.task_id] = state
            truth[state.task_id] = Status.queued
        for step in range(150):
            age_folder(folder)  # settled: the next scan may serve later listings
            listed = {row.task_id: row.status for row in await reader.listing()}
            listings += 1
            assert listed == truth, step
            state = rng.choice(list(states.values()))
            move = rng.random()
            if move < 0.05:
                assert await writer.delete(state.task_id)
                del states[state.task_id], truth[state.task_id]
                state = new_state()
                assert await writer.create(state)
                states[state.task_id] = state
                truth[state.task_id] = Status.queued
            elif state.status.terminal:
                await writer.reset_run(state)  # a restart
                truth[state.task_id] = state.status
            else:
                status = rng.choice([s for s in Status if s is not state.status])
                await writer.append(state, "status", {"status": status.value})
                if rng.random() < 0.5:
                    await writer.save(state)
                else:
                    await writer.flush()  # the log grows in place: no name changes
                    log_only += 1
                truth[state.task_id] = status
            for _ in range(2):
                listed = {row.task_id: row.status for row in await reader.listing()}
                listings += 1
                assert listed == truth, step
    await reader.close()
    # The two listings after a log-only move reuse the scan of the settled folder before it.
    assert log_only > 10
    assert len(scans) <= listings - log_only, (len(scans), listings, log_only)
