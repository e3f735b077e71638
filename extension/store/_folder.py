"""Operations on the task folder as a whole: names, the folder lock, create, remove, list.

All functions block and run in worker threads.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import NamedTuple

from filelock import FileLock

from ..ids import checked_task_id, is_task_id
from . import _journal as journal
from ._atomic import atomic_write
from .base import TaskSummary
from .codec import summary_of
from .seed_format import SnapshotError, decode_snapshot, read_summary

LOCK_TIMEOUT = 30.0
HEAD_BYTES = 4096  # a snapshot's first line (its summary) fits in one read
LOG_SUFFIX = ".events.jsonl"
WRITE_LOCKS = ".locks"  # a folder of `write_lock` files, one per task written
# Caches for the next process (the listing's rows, `write_hint`s): a dot-folder, which scans
# skip, so writing there leaves the task folder's own stamp alone.
CACHE_FOLDER = ".cache"
MAX_CACHE_BYTES = 256 * 2**20  # a larger cache file is passed over (about 500,000 tasks)


class TaskPaths(NamedTuple):
    """The files of one task."""

    snapshot: Path
    log: Path
    idx: Path


def task_file(directory: Path, task_id: str, suffix: str) -> Path:
    """`{task_id}{suffix}` in the folder: every task file's name is built here.

    ValueError for an id outside the id rule (`ids.py`), which keeps every path inside the
    folder and one task's files apart from another's.
    """
    return directory / f"{checked_task_id(task_id)}{suffix}"


def task_paths(directory: Path, task_id: str) -> TaskPaths:
    """The task's snapshot, log and index (ValueError for an id outside the id rule)."""
    base = str(task_file(directory, task_id, ""))
    return TaskPaths(Path(f"{base}.json"), Path(base + LOG_SUFFIX), Path(f"{base}.idx"))


def folder_lock(directory: Path) -> FileLock:
    """The lock that orders create, delete and lease changes between servers sharing the folder.

    Taken after a task's `write_lock` whenever both are held, never before it.
    """
    return FileLock(str(directory / ".store.lock"), timeout=LOCK_TIMEOUT)


def write_lock(directory: Path, task_id: str, timeout: float = LOCK_TIMEOUT) -> FileLock:
    """The lock held around each write of a task's files, with the lease check before it, and
    around taking the task's lease from another server: so no write straddles a takeover.

    Its file lives in `WRITE_LOCKS` (a dot-folder, which scans skip) until the task is removed.
    """
    name = f"{checked_task_id(task_id)}.lock"
    return FileLock(str(directory / WRITE_LOCKS / name), timeout=timeout)


def create_files(
    directory: Path,
    paths: TaskPaths,
    header: bytes,
    snapshot: bytes,
    lease: tuple[str, float] | None = None,
) -> journal.Tail | None:
    """Write a new task's log and snapshot (and lease); None (nothing written) if it exists."""
    with folder_lock(directory):
        if paths.snapshot.exists() or paths.log.exists():
            return None
        try:
            if lease is not None:
                # Under the same lock as the existence check: nobody can take the new task
                # over before its creator runs it.
                write_lease_record(directory, paths.snapshot.name[:-5], *lease)
            # Snapshot first: a listing in between sees a task without a log (the seed case,
            # read as is), never a log alone, which it would take for a damaged task.
            atomic_write(paths.snapshot, snapshot)
            tail = journal.create_log(paths.log, paths.idx, header, [])
        except OSError:
            # Half a task would block its id forever: take back what was written.
            for path in paths:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        return tail


def write_lease_record(directory: Path, task_id: str, owner: str, seconds: float) -> None:
    from ._lease import write_lease  # _lease imports this module for the folder lock

    write_lease(directory, task_id, owner, seconds)


def remove_files(directory: Path, task_id: str) -> bool:
    """Delete every file of a task, quarantined copies included; whether the task existed."""
    existed = False
    checked_task_id(task_id)  # no dot in an id: the prefix below is this task's files only
    with folder_lock(directory):
        for name in os.listdir(directory):
            if name.startswith(f"{task_id}."):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(directory / name)
                    existed = existed or name.endswith((".json", LOG_SUFFIX))
        # Not taken first: a write that holds it finds its task gone and writes nothing.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory / WRITE_LOCKS / f"{task_id}.lock")
    return existed


Stamp = tuple[int, int, int]  # a snapshot's (st_ino, st_mtime_ns, st_size)
HeadCache = dict[str, tuple[Stamp, TaskSummary]]
# "Racy git": a snapshot whose mtime is this close to the scan's start may still be rewritten
# within the same clock tick (same size, perhaps the same inode), so its row is not cached.
RACY_NS = 2_000_000_000
# Seed-format snapshots hold every output; larger ones are left to the store's full load.
MAX_SEED_BYTES = 4_000_000


class Scan(NamedTuple):
    """What one pass over the folder found."""

    rows: dict[str, TaskSummary]  # from snapshot heads
    others: list[str]  # ids that need a full look (seed, damaged, log only, log ahead)
    heads: HeadCache  # rows safe to trust next time while the snapshot's stamp is unchanged
    started: float  # time.monotonic() at the start
    # The folder's (st_ino, st_mtime_ns) before its listing, if settled (None if "racy"): while
    # it holds, no name was added, removed or renamed, so every snapshot is the file scanned.
    folder: tuple[int, int] | None


def folder_stamp(directory: Path) -> tuple[int, int]:
    """The folder's (inode, mtime): any create, delete or rename inside it changes it."""
    info = os.stat(directory)
    return info.st_ino, info.st_mtime_ns


def scan(
    directory: Path, skip: set[str], cache: HeadCache | None = None, *, check_logs: bool = False
) -> Scan:
    """Summaries from snapshot heads, ids that need a full load (seed, damaged, log only), and
    the heads by stamp for the next scan, which then reads only changed snapshots.

    A cached row is used only while the snapshot's (inode, mtime, size) is the one its head was
    read at (fstat of the file read), and rows of snapshots younger than `RACY_NS` at the
    scan's start are never cached. With `check_logs`, a task whose log was written after its
    snapshot goes to `others`: the snapshot may lag the log (a crash between the two writes),
    and only the log knows the task was resumed.
    """
    rows: dict[str, TaskSummary] = {}
    others: list[str] = []
    seen: HeadCache = {}
    cache = cache or {}
    started = time.monotonic()
    settled = time.time_ns() - RACY_NS
    at_start = folder_stamp(directory)  # before the listing: a later change moves it on
    prefix = os.path.join(directory, "")  # plain strings: Path joins cost more than the stat
    names = os.listdir(directory)
    snaps = {n[:-5] for n in names if n.endswith(".json") and not n.startswith(".")}
    logs = {n[: -len(LOG_SUFFIX)] for n in names if n.endswith(LOG_SUFFIX)}
    stat = os.stat
    for task_id in sorted(snaps | logs):
        known = cache.get(task_id)  # cached ids were checked when cached
        # A file named outside the id rule is no task: listing it would show an id that no
        # route could open.
        if (known is None and not is_task_id(task_id)) or task_id in skip:
            continue
        row = None
        if task_id in snaps:
            path = prefix + task_id + ".json"
            try:
                if known is not None:
                    info = stat(path)
                    if (info.st_ino, info.st_mtime_ns, info.st_size) != known[0]:
                        known = None
                found = known or _read_head(path, task_id)
            except FileNotFoundError:
                continue
            stamp, row = found
            if row is None and known is None and task_id not in logs:
                # The seed app's format (no sidecars, no head line): the row comes from the
                # whole file, read once and then trusted by stamp like a head.
                stamp, row = _read_seed(path, task_id)
            if row is not None and stamp[1] < settled:
                seen[task_id] = (stamp, row)
            if row is not None and check_logs and task_id in logs:
                try:
                    logged = stat(prefix + task_id + LOG_SUFFIX).st_mtime_ns
                except FileNotFoundError:
                    logged = 0
                if logged > stamp[1]:
                    row = None  # the log may hold a later status: let the caller read it
        if row is None:
            others.append(task_id)
        else:
            rows[task_id] = row
    unchanged = at_start if at_start[1] < settled else None
    return Scan(rows, others, seen, started, unchanged)


def _read_head(path: str, task_id: str) -> tuple[Stamp, TaskSummary | None]:
    """The snapshot's stamp and its summary row (None: not our head format)."""
    with open(path, "rb") as f:
        # The stamp of the very file read: a snapshot replaced in between is seen as changed
        # next time, never cached under the new stamp with the old content.
        info = os.fstat(f.fileno())
        head = f.read(HEAD_BYTES)
    return (info.st_ino, info.st_mtime_ns, info.st_size), read_summary(head, task_id)


def _read_seed(path: str, task_id: str) -> tuple[Stamp, TaskSummary | None]:
    """A seed-format snapshot's stamp and row (None: not the seed's format, or damaged)."""
    with open(path, "rb") as f:
        info = os.fstat(f.fileno())
        data = f.read(MAX_SEED_BYTES + 1)
    stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
    if len(data) > MAX_SEED_BYTES:
        return stamp, None  # read through the store's full load, as before
    try:
        state, seeded = decode_snapshot(data, task_id)
    except (SnapshotError, ValueError):
        return stamp, None  # damaged: the full load moves it aside and says so
    return stamp, summary_of(state) if seeded else None


def write_lines(
    paths: TaskPaths,
    tail: journal.Tail | None,
    prelude: list[tuple[int, bytes]],
    header: bytes,
    lines: list[tuple[int | None, bytes]],
) -> journal.Tail | None:
    """Append lines to a task's log, opening (and checking) or creating it; None if deleted.

    A missing log is created from `header` and the `prelude` events (what the snapshot holds).
    """
    if tail is not None:
        try:
            return journal.append(paths.log, paths.idx, tail, lines)
        except (journal.Stale, FileNotFoundError):
            pass  # changed or removed under us: look again below
    for _ in range(3):
        if paths.log.exists():
            tail = journal.repair(paths.log, paths.idx)
        elif paths.snapshot.exists():
            tail = journal.create_log(paths.log, paths.idx, header, prelude)
        else:
            return None  # deleted (perhaps by another server): never bring it back
        try:
            return journal.append(paths.log, paths.idx, tail, lines)
        except journal.Stale:
            continue  # it grew between the check and the write: look again (ids dedupe)
    raise journal.Stale()
