"""Cheap reads of a task's state for read-only paths: no outputs, no checkpoints.

A snapshot's first two lines hold everything `TaskInfo` shows; the log adds the events written
since. Only events the index covers are folded in, because the writer extends the index after
the log's fsync: a reader on another server never reports an event that a crash could undo.
A `Head` remembers how far it read, so tailing a running task folds only what is new.
All functions block and run in worker threads.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

from . import _journal as journal
from ._folder import task_paths
from ._lease import durable_last_id
from ._recovery import Signature, signature
from .base import TaskState
from .seed_format import decode_head


class NeedsFullLoad(Exception):
    """The files are not in the form a head read understands (seed, damaged, older format)."""


@dataclass
class Head:
    """A state without outputs, and where in which files it was read up to."""

    state: TaskState
    snapshot: Signature
    log_ino: int
    log_pos: int


def _copy(state: TaskState) -> TaskState:
    twin = copy.copy(state)
    twin.messages = list(state.messages)
    return twin


def load_head(directory: Path, task_id: str, cached: Head | None) -> Head | None:
    """The task's head, continuing from `cached` where its files allow; None if absent."""
    snap, log_path, idx = task_paths(directory, task_id)
    snap_sig = signature(snap)
    if snap_sig == (None,):
        raise NeedsFullLoad  # a log alone (rebuild) or nothing: the full path decides
    if cached is not None and cached.snapshot == snap_sig:
        state, ino, pos = _copy(cached.state), cached.log_ino, cached.log_pos
    else:
        try:
            with open(snap, "rb") as f:
                first, second = f.readline(), f.readline()
        except FileNotFoundError:
            raise NeedsFullLoad from None
        decoded = decode_head(first, second, task_id)
        if decoded is None:
            raise NeedsFullLoad
        state, ino, pos = decoded, -1, -1
    try:
        st = os.stat(log_path)
    except FileNotFoundError:
        return Head(state, snap_sig, -1, -1)
    if st.st_ino != ino or st.st_size < pos:
        try:
            found = journal.read_header(log_path)
        except journal.LogCorrupt:
            raise NeedsFullLoad from None
        if found is None:
            return Head(state, snap_sig, -1, -1)
        if int(found[0]["runFirstEventId"]) != state.run_first_event_id:
            raise NeedsFullLoad  # a restart between the two writes: the full load sorts it out
        located = journal.locate(log_path, idx, state.last_event_id)
        if located is None:
            return Head(state, snap_sig, -1, -1)
        ino, pos = st.st_ino, located[1]
    durable = durable_last_id(idx)
    limit = durable[1] if durable and durable[0] == state.run_first_event_id else None
    pos = journal.replay(state, log_path, pos, durable=limit, full=False).position
    return Head(state, snap_sig, ino, pos)


def load_heads(
    directory: Path, wanted: list[tuple[str, Head | None]]
) -> tuple[dict[str, Head | None], list[str]]:
    """`load_head` of each (task id, cached head): the heads (None: absent), and the ids that
    need a full load."""
    heads: dict[str, Head | None] = {}
    full = []
    for task_id, cached in wanted:
        try:
            heads[task_id] = load_head(directory, task_id, cached)
        except NeedsFullLoad:
            full.append(task_id)
    return heads, full
