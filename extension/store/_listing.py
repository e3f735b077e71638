"""The listing cache, kept in memory and persisted beside the tasks in `.cache/listing`.

Listing the folder reads each snapshot's first line; with 10,000 tasks that is most of a
server's start. The rows read last time are kept with the stamp of the snapshot they came from
(inode, mtime in ns, size), in memory and in one JSON file in the folder, so a new process
re-reads only snapshots whose stamp changed.

The file is a hint, never a source of truth: each row is used only while the snapshot's stamp
is the one it was read at, and snapshots are only ever replaced by rename, so a matching stamp
means the same content. Rows of snapshots written within `_folder.RACY_NS` of a scan are never
cached (a rewrite within one clock tick at equal size could keep the stamp). So any server may
use the file whichever server wrote it, last; a missing, damaged or unknown-version file is
ignored and replaced by the next save. It lives in a subfolder whose name starts with a dot
(scans skip it): its saves then leave the task folder's own stamp alone, which tells listings
that no task file was created, removed or replaced since their last scan.

Saves are atomic (`atomic_write`), made from a worker thread, at most once per
`SAVE_INTERVAL` (the first one at once, so a cold start pays only once) and on `close`.

Scans are shared (`SharedScans`): callers that arrive while one runs share the next, so a burst
of listings (a server's start: takeover pass, expiry sweep, `GET health`) costs one or two
scans, not one each, all fighting for the same interpreter lock. Callers that may miss a change
of the last moment (takeover passes come again; health counts) also take a scan that started
less than `REUSE_SECONDS` ago if the folder's own stamp shows no file created, removed or
renamed since (a snapshot is only ever replaced by rename).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Generic, TypeVar

from ..ids import is_task_id
from ..models import Status
from . import _folder as folder
from ._atomic import atomic_write, read_cache_file
from .base import TaskSummary

NAME = f"{folder.CACHE_FOLDER}/listing"
_OLD_NAME = ".listing.cache"  # where earlier versions kept it, in the task folder itself
VERSION = 1
SAVE_INTERVAL = 30.0  # seconds between two saves of a changing listing
REUSE_SECONDS = 1.0  # how old a scan of an unchanged folder may be for `SharedScans.current`
_T = TypeVar("_T")


def load(directory: Path) -> folder.HeadCache:
    """The rows stored in the folder's listing file; empty if it is missing or not ours."""
    raw = read_cache_file(directory / NAME, folder.MAX_CACHE_BYTES)
    if raw is None:
        return {}
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            return {}
        heads: folder.HeadCache = {}
        moment, safe, text = datetime.fromisoformat, is_task_id, (str, type(None))
        for task_id, ino, mtime, size, status, owner, created, updated, finished, paused in doc[
            "rows"
        ]:
            # Checked as strictly as a snapshot head: a row that is not ours voids the file.
            if not (
                type(ino) is int
                and type(mtime) is int
                and type(size) is int
                and isinstance(owner, text)
                and isinstance(paused, text)
                and isinstance(task_id, str)
                and safe(task_id)
            ):
                return {}
            row = TaskSummary(
                task_id,
                _STATUS[status],
                owner,
                moment(created),
                moment(updated),
                moment(finished) if finished is not None else None,
                paused,
            )
            if row.created_at.tzinfo is None or row.updated_at.tzinfo is None:
                return {}
            if row.finished_at is not None and row.finished_at.tzinfo is None:
                return {}
            heads[task_id] = ((ino, mtime, size), row)
        return heads
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}  # damaged, or written by a version that stores something else


_STATUS = {status.value: status for status in Status}


def save(directory: Path, heads: folder.HeadCache) -> None:
    """Replace the listing file with `heads` (atomically)."""
    rows = [
        [
            task_id,
            *stamp,
            row.status.value,
            row.owner,
            row.created_at.isoformat(),
            row.updated_at.isoformat(),
            row.finished_at.isoformat() if row.finished_at else None,
            row.paused_by,
        ]
        for task_id, (stamp, row) in heads.items()
    ]
    data = json.dumps({"version": VERSION, "rows": rows}, separators=(",", ":"))
    path = directory / NAME
    path.parent.mkdir(exist_ok=True)
    atomic_write(path, data.encode())
    (directory / _OLD_NAME).unlink(missing_ok=True)


class Listing:
    """The head cache of one store: loaded on the first scan, saved in the background."""

    def __init__(self, directory: Path, log: logging.Logger, *, save: bool = True) -> None:
        self.directory = directory
        self.log = log
        self.saves = save  # False for a read-only store: the file is read, never written
        self.heads: folder.HeadCache = {}
        self._loaded = False
        self._saved: folder.HeadCache = {}  # what the file holds, as far as this process knows
        self._saved_at: float | None = None  # time.monotonic() of the last save attempt
        self._lock = threading.Lock()  # scans run in worker threads, perhaps several at once
        self._saving: threading.Thread | None = None

    def scan(self) -> folder.Scan:
        """One pass over the folder, logs checked (blocking: run it in a worker thread).

        Tasks this process writes are scanned too: callers put their live rows over them.
        """
        with self._lock:
            if not self._loaded:
                self.heads = self._saved = load(self.directory)
                self._loaded = True
            cache = self.heads
        found = folder.scan(self.directory, set(), cache, check_logs=True)
        with self._lock:
            self.heads = found.heads
            due = self._saved_at is None or time.monotonic() - self._saved_at >= SAVE_INTERVAL
            if due and not self._busy() and self.heads != self._saved:
                # Its own thread: the caller does not wait for the write (nor for its fsync).
                self._saved_at = time.monotonic()
                self._saving = threading.Thread(
                    target=self.save, name="deepresearch-listing", daemon=True
                )
                self._saving.start()
        return found

    def unchanged(self, found: folder.Scan, max_age: float | None = REUSE_SECONDS) -> bool:
        """Whether no name in the folder changed since `found` (no older than `max_age`
        seconds unless None; blocking)."""
        if found.folder is None:
            return False
        if max_age is not None and time.monotonic() - found.started > max_age:
            return False
        return folder.folder_stamp(self.directory) == found.folder

    def _busy(self) -> bool:
        return self._saving is not None and self._saving.is_alive()

    def save(self) -> None:
        """Write the rows if they changed since the last save (blocking; never raises)."""
        if not self.saves:
            return
        with self._lock:
            heads = self.heads
            if heads == self._saved:
                return
            self._saved_at = time.monotonic()
        try:
            save(self.directory, heads)
        except OSError as exc:  # a cache: a read-only or full folder only costs the next start
            self.log.debug("Listing cache not saved in %s: %s", self.directory, exc)
            return
        with self._lock:
            self._saved = heads

    def close(self) -> None:
        """Wait for a save in progress, then save what changed since (blocking)."""
        saving = self._saving
        if saving is not None:
            saving.join()
        if self._loaded:
            self.save()


class SharedScans(Generic[_T]):
    """Folder scans shared by concurrent callers, one at a time (all methods on one loop)."""

    def __init__(
        self,
        run: Callable[[], Awaitable[_T]],
        still_good: Callable[[_T, float | None], Awaitable[bool]],
    ) -> None:
        self._run = run
        self._still_good = still_good  # whether a finished scan may serve `current` callers
        self._running: asyncio.Task[_T] | None = None
        self._queued: asyncio.Task[_T] | None = None  # not started yet: callers may join it
        self._last: asyncio.Task[_T] | None = None  # the last scan that ended well

    async def fresh(self) -> _T:
        """A scan that starts after this call (so it sees every change made before it)."""
        queued = self._queued
        if queued is None or not _here(queued):
            queued = self._queued = asyncio.create_task(self._after(self._running))
            queued.add_done_callback(_retrieve)
        return await asyncio.shield(queued)  # a caller's cancellation leaves it to the others

    async def current(self) -> _T:
        """The scan in progress, or the last one while `still_good`, else a fresh one: for
        callers that may miss a change of the last moment (takeover passes come again; health
        counts are a snapshot)."""
        running = self._running
        if running is not None and not running.done() and _here(running):
            return await asyncio.shield(running)
        last = self._last
        if (
            last is not None
            and _here(last)
            and await self._still_good(last.result(), REUSE_SECONDS)
        ):
            return last.result()
        return await self.fresh()

    async def settled(self, *, join_running: bool = False) -> tuple[_T, bool]:
        """The last scan, however old, if no name in the folder changed since; else a fresh
        one (or, with `join_running`, the one in progress, as `current`). With whether it is
        the last one: for listings, whose callers then read again the rows that may change
        without a rename (unfinished tasks' logs grow in place)."""
        running = self._running
        if join_running and running is not None and not running.done() and _here(running):
            return await asyncio.shield(running), False
        last = self._last
        if last is not None and _here(last) and await self._still_good(last.result(), None):
            return last.result(), True
        return await self.fresh(), False

    async def _after(self, before: asyncio.Task[_T] | None) -> _T:
        if before is not None and not before.done() and _here(before):
            await asyncio.wait([before])
        me = asyncio.current_task()
        if self._queued is me:
            self._queued = None  # from here on, new callers queue the next scan
        self._running = me
        found = await self._run()
        self._last = me
        return found


def _here(task: asyncio.Task[_T]) -> bool:
    """Whether the task belongs to the running loop (a store may outlive a loop in tests)."""
    return task.get_loop() is asyncio.get_running_loop()


def _retrieve(task: asyncio.Task[_T]) -> None:
    """Mark a failed scan's error as seen (every caller that waited got it already)."""
    if not task.cancelled():
        task.exception()
