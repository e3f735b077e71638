"""Loading a task from disk: snapshot plus the log's newer records, repairing what is damaged."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from . import _journal as journal
from ._atomic import atomic_write
from ._folder import task_paths
from .base import TaskState, utcnow
from .codec import parse_iso
from .seed_format import SnapshotError, decode_snapshot, encode_snapshot, snapshot_parts

Signature = tuple[Any, ...]


def signature(*paths: Path) -> Signature:
    """Identity and size of files, to tell whether a cached state is still current."""
    parts: list[Any] = []
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            parts.append(None)
        else:
            parts.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(parts)


def quarantine(path: Path, log: logging.Logger, task_id: str, why: str) -> Path | None:
    """Move a damaged file aside as `{name}.corrupt-<UTC time>` and say so."""
    stamp = utcnow().strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        # A read-only folder: still serve what can be rebuilt, and say the file stays put.
        log.warning(
            "Task %s: %s is damaged (%s); cannot move it aside (%s)", task_id, path.name, why, exc
        )
        return None
    log.warning(
        "Task %s: %s is damaged (%s); moved aside to %s", task_id, path.name, why, target.name
    )
    return target


def load_task(
    directory: Path, task_id: str, log: logging.Logger, repair: bool = True
) -> tuple[TaskState, Signature] | None:
    """The task's full state from its files, or None if absent or beyond repair.

    Without `repair` (a read-only store) damaged files stay where they are and a state rebuilt
    from the log is returned without writing its snapshot.
    """
    snap, log_path, idx = task_paths(directory, task_id)
    sig = signature(snap, log_path)
    state: TaskState | None = None
    damaged = False
    try:
        data = snap.read_bytes()
    except FileNotFoundError:
        data = None
    if data is not None:
        try:
            state, _ = decode_snapshot(data, task_id)
        except SnapshotError as exc:
            if repair:
                quarantine(snap, log, task_id, str(exc))
            damaged = True
    try:
        found = journal.read_header(log_path)
    except journal.LogCorrupt as exc:
        if repair:
            quarantine(log_path, log, task_id, str(exc))
            with contextlib.suppress(OSError):
                idx.unlink(missing_ok=True)
        found = None
    if found is None:
        if damaged:
            log.warning("Task %s cannot be rebuilt: no event log survives", task_id)
        return (state, sig) if state is not None else None
    header, _ = found
    run_first = int(header["runFirstEventId"])
    if state is None:
        damaged = True  # rebuilt from the log alone
        created = parse_iso(header["createdAt"])
        state = TaskState(
            task_id=task_id,
            request=header["request"],
            owner=header.get("owner"),
            created_at=created,
            updated_at=created,
            last_event_id=run_first - 1,
            run_first_event_id=run_first,
        )
    elif run_first > state.run_first_event_id:
        # A restart replaced the log but crashed before its snapshot: the log's run is current.
        state.last_event_id = run_first - 1
        state.reset_run()
    elif run_first < state.run_first_event_id:
        log.warning("Task %s: its event log belongs to an older run; ignoring it", task_id)
        return state, sig
    _fold(state, log_path, idx, log)
    if damaged and repair:
        try:
            atomic_write(snap, encode_snapshot(*snapshot_parts(state, utcnow())))
            sig = signature(snap, log_path)
        except OSError as exc:
            log.warning("Task %s: rebuilt snapshot not written (%s)", task_id, exc)
        log.warning(
            "Task %s rebuilt from its event log (last event %d)", task_id, state.last_event_id
        )
    return state, sig


def _fold(state: TaskState, log_path: Path, idx: Path, log: logging.Logger) -> None:
    """Apply the log's records after the snapshot's last event (and re-apply idempotent ones)."""
    located = journal.locate(log_path, idx, state.last_event_id - 1)
    if located is None:
        return
    skipped = journal.replay(state, log_path, located[1]).skipped
    if skipped:
        log.warning("Task %s: skipped %d unreadable log records", state.task_id, skipped)
