"""Operations on the task folder as a whole: names, the folder lock, create, remove, list.

All functions block and run in worker threads.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import NamedTuple

from filelock import FileLock

from . import _journal as journal
from ._atomic import atomic_write
from .base import TaskSummary
from .seed_format import read_summary

# Ids in our API are 32 hex digits; the seed's were free-form, so the store accepts any name
# that is safe as a file name, which also keeps every path inside the folder.
SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
LOCK_TIMEOUT = 30.0
HEAD_BYTES = 4096  # a snapshot's first line (its summary) fits in one read
LOG_SUFFIX = ".events.jsonl"


class TaskPaths(NamedTuple):
    """The files of one task."""

    snapshot: Path
    log: Path
    idx: Path


def task_paths(directory: Path, task_id: str) -> TaskPaths:
    """The task's file names; refuses ids that are not safe file names."""
    if not SAFE_ID.match(task_id):
        raise ValueError(f"invalid task id {task_id!r}")
    base = str(directory / task_id)
    return TaskPaths(Path(f"{base}.json"), Path(base + LOG_SUFFIX), Path(f"{base}.idx"))


def folder_lock(directory: Path) -> FileLock:
    """The lock that orders create and delete between servers sharing the folder."""
    # Appends need none: only the lease holder writes a task's log.
    return FileLock(str(directory / ".store.lock"), timeout=LOCK_TIMEOUT)


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
    with folder_lock(directory):
        for name in os.listdir(directory):
            if name.startswith(f"{task_id}."):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(directory / name)
                    existed = existed or name.endswith((".json", LOG_SUFFIX))
    return existed


HeadCache = dict[str, tuple[tuple[int, int], TaskSummary]]


def scan(
    directory: Path, skip: set[str], cache: HeadCache | None = None
) -> tuple[dict[str, TaskSummary], list[str], HeadCache]:
    """Summaries from snapshot heads, ids that need a full load (seed, damaged, log only), and
    the heads by (mtime, size) for the next scan, which then reads only changed snapshots."""
    rows: dict[str, TaskSummary] = {}
    others: list[str] = []
    seen: HeadCache = {}
    cache = cache or {}
    names = os.listdir(directory)
    snaps = {n[:-5] for n in names if n.endswith(".json") and not n.startswith(".")}
    logs = {n[: -len(LOG_SUFFIX)] for n in names if n.endswith(LOG_SUFFIX)}
    for task_id in sorted(snaps | logs):
        if not SAFE_ID.match(task_id) or task_id in skip:
            continue
        row = None
        if task_id in snaps:
            path = directory / f"{task_id}.json"
            try:
                info = os.stat(path)
                stamp = (info.st_mtime_ns, info.st_size)
                known = cache.get(task_id)
                if known is not None and known[0] == stamp:
                    row = known[1]
                else:
                    with open(path, "rb") as f:
                        row = read_summary(f.read(HEAD_BYTES), task_id)
            except FileNotFoundError:
                continue
            if row is not None:
                seen[task_id] = (stamp, row)
        if row is None:
            others.append(task_id)
        else:
            rows[task_id] = row
    return rows, others, seen


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
