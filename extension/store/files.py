"""The `files` backend: one seed-format snapshot per task plus an append-only event log.

On disk, per task: `{id}.json` (snapshot, `seed_format`), `{id}.events.jsonl` (log of the current
run, `_journal`), `{id}.idx` (offsets of the log's events). `append` only buffers; a background
task flushes buffers every `flush_interval` seconds in a worker thread, so recording an event
costs the same at event 50,000 as at event 1. The snapshot is rewritten by `save` only.
Leases, control requests and reading a task's events are in `_files_shared`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from filelock import Timeout

from ..errors import LeaseLost, StoreUnavailable
from . import _folder as folder
from . import _journal as journal
from . import _lease as leases
from ._atomic import atomic_write, read_cache_file, remove_stale_temps, storage_error
from ._files_shared import Entry, SharedFileCalls
from ._heads import Head, load_heads
from ._listing import Listing, SharedScans
from ._recovery import Signature, load_task, quarantine, signature
from ._watch import FolderWatch
from .base import (
    EVENT_TYPES,
    Event,
    LeaseRequest,
    OwnerFilter,
    StoreSettings,
    TaskState,
    TaskSummary,
    checked_hint_name,
    count_by_status,
    expiry_cutoff,
    utcnow,
)
from .codec import summary_of
from .seed_format import encode_snapshot, snapshot_parts, synthesize_events

_HEADS = 1024  # cached heads (small: no outputs) of tasks read but not written here
_T = TypeVar("_T")


class FileTaskStore(SharedFileCalls):
    """Tasks as files in one folder; safe to share between servers on one volume."""

    kind = "files"

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> FileTaskStore:
        return cls(
            settings.storage_dir,
            flush_interval=settings.flush_interval,
            log=settings.log,
            read_only=settings.read_only,
        )

    @property
    def location(self) -> str:
        return str(self.directory)

    def __init__(
        self,
        directory: Path,
        *,
        flush_interval: float = 1.0,
        log: logging.Logger | None = None,
        cache_size: int = 256,
        read_only: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.read_only = read_only
        self.flush_interval = flush_interval
        self.log = log or logging.getLogger(__name__)
        self.cache_size = cache_size
        self._entries: dict[str, Entry] = {}
        # Snapshot heads by stamp for listings, persisted in the folder for the next process;
        # scans shared by the listings that ask at the same time, each with the tasks this
        # store wrote when it began (one let go since may have been read before its last save).
        self._listing = Listing(self.directory, self.log, save=not read_only)

        async def scan() -> tuple[set[str], folder.Scan]:
            writing = set(self._entries)
            return writing, await self._io(self._listing.scan, writes=False)

        async def still_good(last: tuple[set[str], folder.Scan], max_age: float | None) -> bool:
            return await self._io(self._listing.unchanged, last[1], max_age, writes=False)

        self._scans = SharedScans(scan, still_good)
        self._task_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._cache: OrderedDict[str, tuple[TaskState, Signature]] = OrderedDict()
        self._heads: OrderedDict[str, Head] = OrderedDict()
        self._flusher: asyncio.Task[None] | None = None
        self._failure: StoreUnavailable | None = None  # set while the last write failed
        self._warned: str | None = None
        self._watch = FolderWatch(self.directory, self.log)

    # Paths and helpers

    def _paths(self, task_id: str) -> folder.TaskPaths:
        return folder.task_paths(self.directory, task_id)

    async def _io(self, fn: Callable[..., _T], *args: Any, writes: bool = True) -> _T:
        """Run blocking file work in a thread; disk errors become `StoreUnavailable`."""
        if writes and self.read_only:
            raise StoreUnavailable(f"Task storage {self.directory} is opened read-only")
        try:
            result = await _finished_even_if_cancelled(asyncio.to_thread(fn, *args))
        except Timeout as exc:  # before OSError: filelock's Timeout is a TimeoutError
            error = StoreUnavailable(f"Task storage {self.directory} is locked by another process")
            raise error from exc
        except OSError as exc:
            error = storage_error(exc, self.directory)
            if writes:
                self._failure = error
            raise error from exc
        if writes:
            self._failure = None  # the disk takes writes again
        return result

    def _entry(self, state: TaskState) -> Entry:
        entry = self._entries.get(state.task_id)
        if entry is None:
            lock = self._task_locks.get(state.task_id)
            if lock is None:
                # An entry that was settled may still be finishing a write: the next entry of
                # the same task must wait for it, so both share one lock while either lives.
                lock = self._task_locks[state.task_id] = asyncio.Lock()
            entry = self._entries[state.task_id] = Entry(state, lock)
            self._cache.pop(state.task_id, None)
            log_path = self._paths(state.task_id).log
            if state.last_event_id >= state.run_first_event_id and not log_path.exists():
                # Taken before any buffered event changes the state: what the snapshot holds.
                entry.prelude = synthesize_events(state)
        # The manager's object is the live one; keep pointing at whatever it hands us.
        entry.state = state
        return entry

    def _settle(self, entry: Entry) -> None:
        """Move a task that no runner drives (and has nothing to flush) to the bounded cache."""
        task_id = entry.state.task_id
        if entry.state.status.active or entry.pending or self._entries.get(task_id) is not entry:
            return
        del self._entries[task_id]
        paths = self._paths(task_id)
        self._remember(entry.state, signature(paths.snapshot, paths.log))

    def _remember(self, state: TaskState, sig: Signature) -> None:
        self._cache[state.task_id] = (state, sig)
        self._cache.move_to_end(state.task_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    # Lifecycle

    async def open(self) -> None:
        """Create the folder, clear crash leftovers, start the background flusher.

        Read-only, it only checks that the folder exists.
        """
        if self.read_only:
            if not await self._io(self.directory.is_dir, writes=False):
                raise StoreUnavailable(f"Task storage {self.directory} does not exist")
            return
        await self._io(lambda: self.directory.mkdir(parents=True, exist_ok=True))
        await self._io(remove_stale_temps, self.directory)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name="deepresearch-flush")

    async def close(self) -> None:
        """Stop the flusher and flush what is buffered."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self._watch.close()
        try:
            await self.flush()
        finally:
            await asyncio.to_thread(self._listing.close)  # never raises

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self._flush_all(raise_errors=False)
            except Exception:  # the flusher must outlive any surprise; it retries next tick
                self.log.exception("Flushing task events failed")

    # Writing

    async def create(self, state: TaskState, *, lease: LeaseRequest | None = None) -> bool:
        """Write a new task's log and snapshot; False if it exists (checked under a file lock)."""
        paths = self._paths(state.task_id)
        header = journal.header_line(state, state.run_first_event_id)
        snapshot = encode_snapshot(*snapshot_parts(state, utcnow()))
        taken = (lease.owner, lease.seconds) if lease else None
        tail = await self._io(folder.create_files, self.directory, paths, header, snapshot, taken)
        if tail is None:
            return False
        entry = self._entry(state)
        entry.tail = tail
        entry.logged_attempts = state.attempts
        return True

    async def append(self, state: TaskState, type: str, data: dict[str, Any]) -> Event:
        """Number the event, fold it into `state`, and buffer its log line (no disk I/O)."""
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        entry = self._entry(state)
        # Never raises for a failing disk: the event is buffered and written by a later flush
        # (the manager stops research while commits fail, so the buffer stays small). A status
        # such as "paused: storage full" must be kept, not dropped.
        event = Event(state.last_event_id + 1, type, data)
        raw = journal.event_line(event)  # before `apply`: unserialisable data changes nothing
        state.apply(event)
        entry.pending.append((event, raw))
        if state.attempts != entry.logged_attempts:
            # In the same batch as the event that starts the turn ("running"): a group commit
            # between it and the next save, then a crash, would lose the turn's count.
            entry.pending.append((None, journal.meta_line(state.attempts)))
            entry.logged_attempts = state.attempts
        return event

    async def save(self, state: TaskState, *, durable: bool = False) -> None:
        """Flush the task's log, then replace its snapshot atomically (always fsynced)."""
        entry = self._entry(state)
        snap = self._paths(state.task_id).snapshot
        async with entry.lock:
            if state.attempts != entry.logged_attempts:
                entry.pending.append((None, journal.meta_line(state.attempts)))
                entry.logged_attempts = state.attempts
            # Captured before the flush, so the log always reaches the snapshot's lastEventId.
            head, body = snapshot_parts(state, utcnow())
            await self._flush_locked(entry)
            data = encode_snapshot(head, body)
            await self._io(self._fenced, state.task_id, lambda: atomic_write(snap, data))
        self._settle(entry)

    async def save_checkpoint(self, state: TaskState, key: str, value: Any) -> None:
        """Set the checkpoint and make its log record durable before returning."""
        entry = self._entry(state)
        raw = journal.checkpoint_line(key, value)
        state.checkpoints[key] = value
        entry.pending.append((None, raw))
        async with entry.lock:
            await self._flush_locked(entry)

    async def reset_run(self, state: TaskState) -> None:
        """Start a new run: a fresh log (atomically replaced) and a snapshot without the old run."""
        entry = self._entry(state)
        paths = self._paths(state.task_id)
        async with entry.lock:
            header = journal.header_line(state, state.last_event_id + 1)
            entry.tail = await self._io(
                self._fenced,
                state.task_id,
                lambda: journal.create_log(paths.log, paths.idx, header, []),
            )
            # Unflushed events of the old run go with it; their ids stay used.
            entry.pending.clear()
            entry.prelude = None
            state.reset_run()
            entry.logged_attempts = state.attempts
            head, body = snapshot_parts(state, utcnow())
            # If this fails the new log still says which run is current, and load honours it.
            data = encode_snapshot(head, body)
            await self._io(self._fenced, state.task_id, lambda: atomic_write(paths.snapshot, data))

    async def flush(self) -> None:
        """Write and fsync every buffered line now."""
        await self._flush_all(raise_errors=True)

    async def _flush_all(self, *, raise_errors: bool) -> None:
        first: StoreUnavailable | None = None
        lost: list[str] = []
        for entry in list(self._entries.values()):
            if not entry.pending:
                continue
            try:
                async with entry.lock:
                    await self._flush_locked(entry)
            except StoreUnavailable as exc:
                if first is None:
                    first = exc
                continue
            except LeaseLost as exc:
                lost.append(exc.task_id)  # the other tasks are still written
                continue
            self._settle(entry)
        for task_id in lost:
            if self.on_lease_lost is not None:
                await self.on_lease_lost(task_id)
        if first is not None:
            if raise_errors:
                raise first
            # Once per distinct problem, or the log fills as fast as the disk did.
            if first.message != self._warned:
                self.log.warning("Task events not flushed, retrying: %s", first.message)
            self._warned = first.message
        else:
            self._warned = None

    async def _flush_locked(self, entry: Entry) -> None:
        """Write the entry's buffered lines (caller holds `entry.lock`)."""
        if not entry.pending:
            return
        batch = list(entry.pending)
        state = entry.state
        lines = [(ev.id if ev else None, raw) for ev, raw in batch]
        # Only used if the log is missing: a seed task's first write, or a log lost on disk.
        header = journal.header_line(state, state.run_first_event_id)
        prelude = [(e.id, journal.event_line(e)) for e in entry.prelude or []]
        paths = self._paths(state.task_id)
        try:
            tail = await self._io(
                self._fenced,
                state.task_id,
                lambda: folder.write_lines(paths, entry.tail, prelude, header, lines),
            )
        except LeaseLost:
            # Another server took the task over: what is buffered here must never reach it.
            entry.pending.clear()
            if self._entries.get(state.task_id) is entry:
                del self._entries[state.task_id]
            raise
        except StoreUnavailable:
            entry.tail = None  # the log's end is unknown now: check it before the next write
            raise
        except journal.LogCorrupt as exc:
            # One task's damaged log must not stall every flush: set it aside, start afresh.
            await self._io(quarantine, paths.log, self.log, state.task_id, str(exc))
            await self._io(paths.idx.unlink, True)
            tail = await self._io(
                self._fenced,
                state.task_id,
                lambda: folder.write_lines(paths, None, prelude, header, lines),
            )
        if tail is None:
            self.log.warning("Task %s was deleted; dropping its unsaved events", state.task_id)
            entry.pending.clear()
            if self._entries.get(state.task_id) is entry:
                del self._entries[state.task_id]
            return
        entry.tail = tail
        del entry.pending[: len(batch)]
        entry.prelude = None
        self._failure = None

    def _fenced(self, task_id: str, write: Callable[[], _T]) -> _T:
        """Run a write of the task (in a worker thread) unless another writer took it over.

        The lease is checked and the write made under the task's write lock, which a takeover
        takes too: a process frozen between the two steps holds the takeover off until it has
        written, and its next write finds the lease gone (the `redis` backend checks inside its
        write script).
        """
        writer = self.writer_id
        if writer is None:
            return write()
        with folder.write_lock(self.directory, task_id):
            if not leases.may_write(self.directory, task_id, writer):
                raise LeaseLost(task_id)
            return write()

    # Reading

    async def load(self, task_id: str) -> TaskState | None:
        """The manager's live object if this store writes the task, else a (cached) load."""
        paths = self._paths(task_id)
        entry = self._entries.get(task_id)
        if entry is not None:
            return entry.state
        cached = self._cache.get(task_id)
        if cached is not None:
            if signature(paths.snapshot, paths.log) == cached[1]:
                self._cache.move_to_end(task_id)
                return cached[0]
            del self._cache[task_id]
        return (await self._load_files([task_id]))[task_id]

    async def peek(self, task_id: str) -> TaskState | None:
        """Status, progress and result without outputs: two snapshot lines plus the log's news."""
        return (await self.peek_many([task_id]))[task_id]

    async def peek_many(self, task_ids: list[str]) -> dict[str, TaskState | None]:
        """`peek` of each task, the files read in one worker-thread hop (a listing's batch)."""
        found: dict[str, TaskState | None] = {}
        wanted = []
        for task_id in task_ids:
            paths = self._paths(task_id)
            entry = self._entries.get(task_id)
            if entry is not None:
                found[task_id] = entry.state
                continue
            cached = self._cache.get(task_id)
            if cached is not None and signature(paths.snapshot, paths.log) == cached[1]:
                found[task_id] = cached[0]
                continue
            wanted.append((task_id, self._heads.get(task_id)))
        if not wanted:  # all live or cached: no thread hop
            return {task_id: found[task_id] for task_id in task_ids}
        heads, full = await self._io(load_heads, self.directory, wanted, writes=False)
        for task_id, head in heads.items():
            if head is None:
                self._heads.pop(task_id, None)
                found[task_id] = None
                continue
            self._heads[task_id] = head
            self._heads.move_to_end(task_id)
            found[task_id] = head.state
        while len(self._heads) > _HEADS:
            self._heads.popitem(last=False)
        for task_id in full:
            self._heads.pop(task_id, None)
        # Seed, damaged or older files: the full path decides, for all of them in one hop.
        found.update(await self._load_files(full))
        return {task_id: found[task_id] for task_id in task_ids}  # in the order asked

    async def _load_files(self, task_ids: list[str]) -> dict[str, TaskState | None]:
        """`load` of tasks this store does not write, their files read in one worker-thread hop."""
        if not task_ids:
            return {}
        repair = not self.read_only

        def read() -> dict[str, tuple[TaskState, Signature] | None]:
            return {t: load_task(self.directory, t, self.log, repair) for t in task_ids}

        found: dict[str, TaskState | None] = {}
        for task_id, loaded in (await self._io(read, writes=False)).items():
            entry = self._entries.get(task_id)
            if entry is not None:  # a writer appeared while we read
                found[task_id] = entry.state
            elif loaded is None:
                found[task_id] = None
            else:
                self._remember(*loaded)
                found[task_id] = loaded[0]
        return found

    async def summaries(self) -> list[TaskSummary]:
        """One row per task from each snapshot's first line (seed files are read whole)."""
        writing = set(self._entries)
        scanned = await self._scans.fresh()  # started after this call: sees every task
        return list((await self._merge(scanned, writing)).values())

    async def listing(self) -> list[TaskSummary]:
        """Rows for `GET tasks`: as `summaries`, but an idle folder is not scanned again."""
        return list((await self._settled_rows()).values())

    async def _settled_rows(self, *, join_running: bool = False) -> dict[str, TaskSummary]:
        """Every task's row, from the last scan while no name in the folder changed since.

        The folder's stamp moves with every snapshot written, task created or deleted (all by
        rename or unlink), and a finished task changes only by a restart, which replaces its
        log and snapshot. So rows of a scan of an unchanged folder still hold, but for
        unfinished tasks, whose logs grow in place: those are read again.
        """
        writing = set(self._entries)
        scanned, reused = await self._scans.settled(join_running=join_running)
        rows = await self._merge(scanned, writing)
        if reused:
            for task_id, row in list(rows.items()):
                if not row.status.terminal and task_id not in self._entries:
                    state = await self.peek(task_id)
                    if state is None:
                        del rows[task_id]
                    else:
                        rows[task_id] = summary_of(state)
        return rows

    async def _merge(
        self, scanned: tuple[set[str], folder.Scan], writing: set[str]
    ) -> dict[str, TaskSummary]:
        """A scan's rows with this store's live tasks, and the rows a scan cannot give."""
        before, found = scanned
        rows = dict(found.rows)
        for task_id, entry in self._entries.items():
            rows[task_id] = summary_of(entry.state)
        # Seed format, damaged, a log alone or written after its snapshot (read through it), and
        # tasks this store let go meanwhile (the scan may have read an older snapshot).
        for task_id in found.others + [t for t in writing | before if t not in self._entries]:
            state = await self.peek(task_id)
            if state is not None:
                rows[task_id] = summary_of(state)
        return rows

    async def unfinished(self) -> list[TaskSummary]:
        """Rows of queued, running and paused tasks, without reading finished tasks' files.

        Served from the listing cache (a `stat` per snapshot and per log, the head read only
        of snapshots that changed), or, while the folder is unchanged, from the last scan
        with the unfinished tasks read again (`_settled_rows`). Never misses an unfinished
        task: a cached row is trusted only while its snapshot is unchanged, and a task whose
        log was written after its snapshot is read through its log, which knows of a resume
        the snapshot may not show yet. It may list a task that has just finished (callers
        check under the lease).
        """
        # A scan already running will do: a task it misses is there on the next pass.
        rows = await self._settled_rows(join_running=True)
        return [row for row in rows.values() if not row.status.terminal]

    # Removal and upkeep

    async def delete(self, task_id: str) -> bool:
        """Remove the task's snapshot, log, index, lease, control and quarantined copies."""
        self._paths(task_id)
        entry = self._entries.pop(task_id, None)
        self._cache.pop(task_id, None)
        self._heads.pop(task_id, None)
        if entry is None:
            return await self._io(folder.remove_files, self.directory, task_id)
        entry.pending.clear()
        async with entry.lock:  # let a flush in progress finish first
            return await self._io(folder.remove_files, self.directory, task_id)

    async def expire(self, older_than: datetime) -> list[str]:
        """Delete terminal tasks finished before `older_than`; never queued, running or paused."""
        older_than = expiry_cutoff(older_than)
        removed = []
        for row in await self.summaries():
            if not row.status.terminal or row.finished_at is None or row.finished_at >= older_than:
                continue
            state = await self.load(row.task_id)  # the log may know of a later resume
            if state is None or not state.status.terminal or state.finished_at is None:
                continue
            if state.finished_at < older_than and await self.delete(row.task_id):
                removed.append(row.task_id)
        return removed

    def detach(self, task_id: str) -> None:
        """Forget the writer state of a task whose lease another server now holds."""
        entry = self._entries.pop(task_id, None)
        if entry is not None:
            entry.pending.clear()
        self._cache.pop(task_id, None)
        self._heads.pop(task_id, None)

    # Hints for the next process

    def _hint_path(self, name: str) -> Path:
        return self.directory / folder.CACHE_FOLDER / checked_hint_name(name)

    async def read_hint(self, name: str) -> bytes | None:
        path = self._hint_path(name)
        return await self._io(read_cache_file, path, folder.MAX_CACHE_BYTES, writes=False)

    async def write_hint(self, name: str, data: bytes) -> None:
        path = self._hint_path(name)
        if self.read_only:
            return

        def write() -> None:
            path.parent.mkdir(exist_ok=True)
            atomic_write(path, data)

        # Not a task write: a failure here says nothing of the task storage's health.
        await self._io(write, writes=False)

    async def health(self, counted: OwnerFilter | None = None) -> dict[str, Any]:
        """Kind, task counts by status, buffered events and the last disk error.

        Counted from the listing cache (a `stat` per file; a scan already running will do).
        """
        rows = (await self._merge(await self._scans.current(), set(self._entries))).values()
        counts = count_by_status(rows, counted)
        return {
            "kind": self.kind,
            "tasks": sum(counts.values()),
            "by_status": counts,
            "in_memory": len(self._entries),
            "cached": len(self._cache),
            "pending_events": sum(len(e.pending) for e in self._entries.values()),
            "error": self._failure.message if self._failure else None,
        }


async def _finished_even_if_cancelled(work: Awaitable[_T]) -> _T:
    """Await thread work; a caller cancelled meanwhile waits for the thread, then is cancelled.

    A thread cannot be stopped: were the caller let go at once, it would release the task's
    lock while its write still runs, and a DELETE taking the lock next would remove the files
    just before the thread puts a snapshot back (a deleted task that comes back and runs).
    """
    future = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError as cancelled:
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # seen: the caller is gone, its cancellation is what matters
        raise cancelled
