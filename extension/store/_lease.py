"""Leases and control requests of the `files` store: `{taskId}.lease`, `{taskId}.control`.

A lease file holds `{"owner": ..., "expires": epoch seconds}`. Taking, renewing and releasing
compare and write it under the folder's OS lock (`flock` through filelock), so two servers never
both believe they hold it; the record itself is replaced by rename, so lock-free readers always
see a whole record. A holder checks the record before each write of the task, both under the
task's write lock, which a takeover takes too: a holder frozen between its check and its write
(past its lease) delays the takeover by at most `TAKEOVER_WAIT` a round, and never writes after
it. Expiry compares wall clocks: servers on several machines need synchronised clocks (NTP),
with skew well below `lease_seconds`.

A control file holds one pending action for the holder; the holder takes it by renaming it to
a private name first, so a request is acted on once even if two loops race.
All functions block and run in worker threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from filelock import Timeout

from ._atomic import temp_name, write_all
from ._folder import folder_lock, task_file, task_paths, write_lock
from .owners import owner_gone

# How long taking a task over waits for a write of the task in progress; a holder stuck in one
# longer is passed over until the next takeover round.
TAKEOVER_WAIT = 1.0


def lease_path(directory: Path, task_id: str) -> Path:
    return task_file(directory, task_id, ".lease")


def control_path(directory: Path, task_id: str) -> Path:
    return task_file(directory, task_id, ".control")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        return None  # torn by a crash mid-write on a filesystem without atomic rename
    return record if isinstance(record, dict) else None


def _replace(path: Path, record: dict[str, Any]) -> None:
    # No fsync: a lease is worthless after a crash anyway (it lapses), but rename keeps it whole.
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_all(fd, json.dumps(record).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_lease(directory: Path, task_id: str, owner: str, seconds: float) -> None:
    """Write a lease record (the caller holds the folder lock)."""
    _replace(lease_path(directory, task_id), {"owner": owner, "expires": time.time() + seconds})


def live_owner(record: dict[str, Any] | None) -> str | None:
    """The owner of a lease record if it has not lapsed."""
    if record is None or float(record.get("expires", 0)) <= time.time():
        return None
    owner = record.get("owner")
    if not isinstance(owner, str) or owner_gone(owner):
        return None
    return owner


def holder(directory: Path, task_id: str) -> str | None:
    """The owner of a live lease, or None."""
    return live_owner(_read(lease_path(directory, task_id)))


def acquire(directory: Path, task_id: str, owner: str, seconds: float) -> bool:
    """Take the lease if free, lapsed or already `owner`'s, and no write of the task is under
    way (a holder frozen in one would write after the takeover)."""
    fence = write_lock(directory, task_id, timeout=TAKEOVER_WAIT)
    try:
        fence.acquire()
    except Timeout:
        return False
    try:
        with folder_lock(directory):
            current = holder(directory, task_id)
            if current is not None and current != owner:
                return False
            write_lease(directory, task_id, owner, seconds)
            return True
    finally:
        fence.release()


def renew(directory: Path, task_ids: list[str], owner: str, seconds: float) -> set[str]:
    """Extend `owner`'s leases (one lock for all); the ids still held."""
    held: set[str] = set()
    if not task_ids:
        return held
    with folder_lock(directory):
        for task_id in task_ids:
            record = _read(lease_path(directory, task_id))
            # Lapsed but not taken by anyone else: still ours (nobody could have written).
            if record is not None and record.get("owner") == owner:
                write_lease(directory, task_id, owner, seconds)
                held.add(task_id)
    return held


def release(directory: Path, task_id: str, owner: str) -> None:
    """Let the lease lapse now if `owner` holds it.

    The record stays, expired, naming its last holder: that is what fences a runner that was
    frozen past its lease (`may_write`) even after the server that took over released it too.
    But not for a task without files (deleted meanwhile, as by a DELETE racing a resume): its
    record goes, as a delete removes it, rather than outliving the task.
    """
    with folder_lock(directory):
        path = lease_path(directory, task_id)
        record = _read(path)
        if record is not None and record.get("owner") == owner:
            snapshot, log, _ = task_paths(directory, task_id)
            if snapshot.exists() or log.exists():
                _replace(path, {"owner": owner, "expires": 0})
            else:
                path.unlink(missing_ok=True)


def may_write(directory: Path, task_id: str, writer: str) -> bool:
    """Whether `writer` may still write the task: nobody else took its lease since (asked
    under the task's `write_lock`, held through the write).

    A lapsed lease of `writer`'s own that nobody took is still good: nobody else wrote. No
    record at all: a task nobody ever claimed (a seed file) or one just deleted (the write
    finds that out itself).
    """
    record = _read(lease_path(directory, task_id))
    return record is None or record.get("owner") == writer


def request(directory: Path, task_id: str, action: str) -> None:
    """Leave an action for the lease holder (a newer request replaces an older one)."""
    _replace(control_path(directory, task_id), {"action": action, "at": time.time()})


def take(directory: Path, task_ids: list[str]) -> dict[str, str]:
    """Pending actions for these tasks, each taken (removed) exactly once."""
    found: dict[str, str] = {}
    for task_id in task_ids:
        path = control_path(directory, task_id)
        private = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.taken")
        try:
            os.rename(path, private)  # atomic: one taker wins
        except FileNotFoundError:
            continue
        record = _read(private)
        with contextlib.suppress(OSError):
            private.unlink()
        if record is not None and isinstance(record.get("action"), str):
            found[task_id] = record["action"]
    return found


def durable_last_id(idx_path: Path) -> tuple[int, int] | None:
    """(run first id, last id whose log line is fsynced) from the index; None without one.

    The writer extends the index only after the log's fsync, so indexed events are durable.
    """
    try:
        with open(idx_path, "rb") as f:
            head = f.read(8)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return None
    if len(head) < 8:
        return None
    run_first = int.from_bytes(head, "little")
    return run_first, run_first - 1 + (size - 8) // 8
