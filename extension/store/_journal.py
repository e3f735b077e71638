"""The append-only log `{taskId}.events.jsonl` and its offset index `{taskId}.idx`.

Log: one compact JSON record per line, only for the current run (a restart writes a new log):
  {"k":"h","v":1,"taskId":..,"runFirstEventId":N,"createdAt":..,"owner":..,"request":{..},"ts":..}
  {"k":"e","id":N,"t":"output","ts":1736332200.123,"d":{"text":".."}}     one event
  {"k":"c","key":"plan","value":..,"ts":..}                                  a checkpoint
  {"k":"m","attempts":2,"ts":..}                                             run metadata
Index: 8-byte little-endian run first id, then one 8-byte offset per event id from that id on,
so the line of event N is found in O(1). The index is derived: any doubt and it is rebuilt.
All functions here block and run in worker threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from ..lifecycle import EventType
from . import _atomic  # through the module: tests swap `_atomic.write_all` to fail writes
from .base import EVENT_TYPES, Event, TaskState
from .codec import iso

LOG_VERSION = 1
_U64 = struct.Struct("<Q")
_EVENT_PREFIX = b'{"k":"e","id":'

LOG_RECORD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "jupyter-deepresearch event log record ({taskId}.events.jsonl, one per line)",
    "type": "object",
    "required": ["k"],
    "oneOf": [
        {
            "properties": {
                "k": {"const": "h"},
                "v": {"const": LOG_VERSION},
                "taskId": {"type": "string"},
                "runFirstEventId": {"type": "integer", "minimum": 1},
                "createdAt": {"type": "string"},
                "owner": {"type": ["string", "null"]},
                "request": {"type": "object"},
            },
            "required": ["k", "v", "taskId", "runFirstEventId", "createdAt", "request"],
        },
        {
            "properties": {
                "k": {"const": "e"},
                "id": {"type": "integer", "minimum": 1},
                "t": {"enum": list(EVENT_TYPES)},
                "ts": {"type": "number"},
                "d": {"type": "object"},
            },
            "required": ["k", "id", "t", "ts", "d"],
        },
        {
            "properties": {
                "k": {"const": "c"},
                "key": {"type": "string"},
                "ts": {"type": "number"},
            },
            "required": ["k", "key", "value", "ts"],
        },
        {
            "properties": {
                "k": {"const": "m"},
                "attempts": {"type": "integer", "minimum": 0},
                "ts": {"type": "number"},
            },
            "required": ["k", "attempts", "ts"],
        },
    ],
}


class LogCorrupt(ValueError):
    """A log whose header record is missing or unreadable."""


@dataclass
class Tail:
    """What the writer knows about a log: its run, its size, its last id, index entries."""

    run_first: int
    size: int
    last_id: int
    indexed: int


def line(record: dict[str, Any]) -> bytes:
    """One record as a log line (compact JSON never contains a raw newline)."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def header_line(state: TaskState, run_first: int) -> bytes:
    """The first line of a log: what a rebuild needs beyond the events."""
    return line(
        {
            "k": "h",
            "v": LOG_VERSION,
            "taskId": state.task_id,
            "runFirstEventId": run_first,
            "createdAt": iso(state.created_at),
            "owner": state.owner,
            "request": state.request,
            "ts": round(time.time(), 3),
        }
    )


def event_line(event: Event, ts: float | None = None) -> bytes:
    """An event record; `ts` (epoch seconds) restores updated/finished times on rebuild."""
    stamp = round(time.time() if ts is None else ts, 3)
    return line({"k": "e", "id": event.id, "t": event.type, "ts": stamp, "d": event.data})


def checkpoint_line(key: str, value: Any) -> bytes:
    """A checkpoint record of the current run."""
    return line({"k": "c", "key": key, "value": value, "ts": round(time.time(), 3)})


def meta_line(attempts: int) -> bytes:
    """A run-metadata record (attempts change on start and resume, not through events)."""
    return line({"k": "m", "attempts": attempts, "ts": round(time.time(), 3)})


def parse(raw: bytes) -> dict[str, Any] | None:
    """A record from a line, or None if the line is damaged."""
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("k"), str) else None


def _event_id(raw: bytes) -> int | None:
    # Fast path for lines we wrote ourselves; anything else goes through the JSON parser.
    if raw.startswith(_EVENT_PREFIX):
        end = raw.find(b",", len(_EVENT_PREFIX))
        digits = raw[len(_EVENT_PREFIX) : end]
        if end > 0 and digits.isdigit():
            return int(digits)
    record = parse(raw)
    if record is None or record["k"] != "e" or not isinstance(record.get("id"), int):
        return None
    return int(record["id"])


def read_header(log_path: Path) -> tuple[dict[str, Any], int] | None:
    """The header record and its length in bytes; None if there is no log."""
    try:
        with open(log_path, "rb") as f:
            first = f.readline()
    except FileNotFoundError:
        return None
    record = parse(first) if first.endswith(b"\n") else None
    if (
        record is None
        or record["k"] != "h"
        or not isinstance(record.get("runFirstEventId"), int)
        or record["runFirstEventId"] < 1
        or not isinstance(record.get("request"), dict)
        or not isinstance(record.get("createdAt"), str)
    ):
        raise LogCorrupt(f"{log_path.name} has no readable header record")
    return record, len(first)


def create_log(
    log_path: Path, idx_path: Path, header: bytes, lines: list[tuple[int, bytes]]
) -> Tail:
    """Atomically replace log and index with a new run: header plus `lines` (event id, line)."""
    run_first = _header_run_first(header)
    offsets: list[int] = []
    pos, last = len(header), run_first - 1
    for event_id, raw in lines:
        offsets.extend([pos] * (event_id - last))  # a gap maps to the next event
        last = event_id
        pos += len(raw)
    # Index first: a crash between the two renames leaves an index the log's header disowns.
    _atomic.atomic_write(idx_path, _U64.pack(run_first) + b"".join(_U64.pack(o) for o in offsets))
    _atomic.atomic_write(log_path, header + b"".join(raw for _, raw in lines))
    return Tail(run_first=run_first, size=pos, last_id=last, indexed=len(offsets))


def _header_run_first(header: bytes) -> int:
    return int(json.loads(header)["runFirstEventId"])


def append(
    log_path: Path, idx_path: Path, tail: Tail, lines: list[tuple[int | None, bytes]]
) -> Tail:
    """Append lines (event id or None, line) to log and index, fsync both; the new tail."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        if size != tail.size:
            raise Stale()
        data, offsets, last, pos = [], [], tail.last_id, size
        for event_id, raw in lines:
            if event_id is not None:
                if event_id <= last:  # already logged by an attempt that failed half-way
                    continue
                offsets.extend([pos] * (event_id - last))  # a gap maps to the next event
                last = event_id
            data.append(raw)
            pos += len(raw)
        try:
            _atomic.write_all(fd, b"".join(data))
            os.fsync(fd)
        except OSError:
            # Undo a partial write so the next attempt never appends after a torn line.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
    if offsets:
        ifd = os.open(idx_path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            end = _U64.size * (1 + tail.indexed)
            os.ftruncate(ifd, end)
            os.lseek(ifd, end, os.SEEK_SET)
            _atomic.write_all(ifd, b"".join(_U64.pack(o) for o in offsets))
            os.fsync(ifd)
        finally:
            os.close(ifd)
    return Tail(tail.run_first, pos, last, tail.indexed + len(offsets))


class Stale(Exception):
    """The log changed under the writer (or a failed write left it unknown): repair first."""


def repair(log_path: Path, idx_path: Path) -> Tail:
    """Open an existing log for writing: drop a torn last line, bring the index up to date."""
    found = read_header(log_path)
    if found is None:
        raise FileNotFoundError(log_path)
    header, header_len = found
    run_first = int(header["runFirstEventId"])
    with open(log_path, "r+b") as f:
        size = _truncate_torn(f)
        indexed, start = _trusted_index(f, idx_path, run_first, header_len)
        last = run_first - 1 + indexed
        offsets: list[int] = []
        if indexed:
            f.seek(start)
            first = f.readline()  # the last indexed event itself
            start += len(first)
        for pos, raw in _lines(f, start):
            event_id = _event_id(raw)
            if event_id is not None and event_id > last:
                offsets.extend([pos] * (event_id - last))
                last = event_id
    mode = "r+b" if indexed or idx_path.exists() else "w+b"
    with open(idx_path, mode) as idx:
        idx.truncate(_U64.size * (1 + indexed))
        idx.seek(0)
        idx.write(_U64.pack(run_first))
        idx.seek(_U64.size * (1 + indexed))
        idx.write(b"".join(_U64.pack(o) for o in offsets))
        idx.flush()
        os.fsync(idx.fileno())
    return Tail(run_first, size, last, indexed + len(offsets))


def _truncate_torn(f: Any) -> int:
    size = int(os.fstat(f.fileno()).st_size)
    pos = size
    while pos > 0:
        step = min(pos, 64 * 1024)
        f.seek(pos - step)
        chunk = f.read(step)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            pos = pos - step + cut + 1
            break
        pos -= step
    if pos != size:
        f.truncate(pos)
        f.flush()
        os.fsync(f.fileno())
    return pos


def _trusted_index(f: Any, idx_path: Path, run_first: int, header_len: int) -> tuple[int, int]:
    """How many leading index entries are right, and the offset of the last one (or header end)."""
    try:
        with open(idx_path, "rb") as idx:
            head = idx.read(_U64.size)
            count = (os.fstat(idx.fileno()).st_size - _U64.size) // _U64.size
            if len(head) < _U64.size or _U64.unpack(head)[0] != run_first or count <= 0:
                return 0, header_len
            idx.seek(_U64.size * count)
            offset = _U64.unpack(idx.read(_U64.size))[0]
    except FileNotFoundError:
        return 0, header_len
    if _id_at(f, offset) == run_first + count - 1:
        return count, offset
    return 0, header_len


def _id_at(f: Any, offset: int) -> int | None:
    if not 0 < offset < os.fstat(f.fileno()).st_size:  # an index entry may be garbage
        return None
    f.seek(offset)
    raw = f.readline()
    return _event_id(raw) if raw.endswith(b"\n") else None


def _lines(f: Any, offset: int) -> Iterator[tuple[int, bytes]]:
    """Complete lines from `offset` on, with their offsets; a torn last line is left out."""
    f.seek(offset)
    pos = offset
    for raw in f:
        if not raw.endswith(b"\n"):
            return
        yield pos, raw
        pos += len(raw)


def locate(log_path: Path, idx_path: Path, after: int) -> tuple[int, int] | None:
    """(run first id, offset to read from) for the events with id > `after`; None if no log."""
    found = read_header(log_path)
    if found is None:
        return None
    header, header_len = found
    run_first = int(header["runFirstEventId"])
    wanted = after + 1 - run_first  # index entry of the first event wanted
    if wanted <= 0:
        return run_first, header_len
    try:
        with open(idx_path, "rb") as idx, open(log_path, "rb") as f:
            head = idx.read(_U64.size)
            count = (os.fstat(idx.fileno()).st_size - _U64.size) // _U64.size
            if len(head) < _U64.size or _U64.unpack(head)[0] != run_first or count <= 0:
                return run_first, header_len
            entry = min(wanted, count - 1)  # past the index: start at its last entry and scan
            idx.seek(_U64.size * (1 + entry))
            offset = _U64.unpack(idx.read(_U64.size))[0]
            found_id = _id_at(f, offset)
            # Exact match only: a wrong entry that points at a later event would skip events.
            if found_id == run_first + entry:
                return run_first, offset
    except FileNotFoundError:
        pass
    return run_first, header_len


def read_events(
    log_path: Path, offset: int, after: int, budget: int
) -> tuple[list[Event], int, bool]:
    """Events with id > `after` from `offset`, about `budget` bytes: (events, next, at_end)."""
    events: list[Event] = []
    read = 0
    with open(log_path, "rb") as f:
        for pos, raw in _lines(f, offset):
            offset = pos + len(raw)
            read += len(raw)
            event_id = _event_id(raw)
            if event_id is not None and event_id > after:
                record = parse(raw)
                if record is not None:
                    events.append(Event(event_id, record["t"], record["d"]))
            if read >= budget:
                return events, offset, False
    return events, offset, True


class Replayed(NamedTuple):
    """How far `replay` read, and how many records it could not apply."""

    position: int
    skipped: int


def replay(
    state: TaskState, log_path: Path, offset: int, *, durable: int | None = None, full: bool = True
) -> Replayed:
    """Fold the log's records from `offset` on into `state`; the one reader of a log into a state.

    Applies events newer than `state.last_event_id` (keeping the times they were logged at) and
    the attempts; with `full` also the checkpoints, else outputs are dropped as they come (a
    cheap head). Stops before the first event past `durable` (the id the index vouches for),
    so a reader never reports an event a crash could undo. Damaged lines are passed over;
    readable records that cannot be applied are counted as skipped.
    """
    skipped = 0
    with open(log_path, "rb") as f:
        for pos, raw in _lines(f, offset):
            record = parse(raw)
            if record is not None:
                event_id = record.get("id") if record["k"] == "e" else None
                if durable is not None and isinstance(event_id, int) and event_id > durable:
                    return Replayed(pos, skipped)  # not durable yet: read it again next time
                try:
                    _apply(state, record, full=full)
                except (KeyError, ValueError, TypeError):
                    skipped += 1
            offset = pos + len(raw)
    return Replayed(offset, skipped)


def _apply(state: TaskState, record: dict[str, Any], *, full: bool) -> None:
    kind = record["k"]
    if kind == "e":
        event_id = record["id"]
        if not isinstance(event_id, int):
            raise TypeError("event id is not an integer")
        if event_id > state.last_event_id:
            event = Event(event_id, str(record["t"]), dict(record["d"]))
            state.apply(event)
            _restore_times(state, event, record.get("ts"))
            if not full:
                state.outputs.clear()
    elif kind == "c" and full:
        state.checkpoints[str(record["key"])] = record["value"]
    elif kind == "m":
        attempts = record["attempts"]
        if not isinstance(attempts, int):
            raise TypeError("attempts is not an integer")
        state.attempts = attempts


def _restore_times(state: TaskState, event: Event, ts: Any) -> None:
    # `apply` stamps "now"; a replay must keep the original times, or expiry would restart.
    if not isinstance(ts, (int, float)):
        return
    moment = datetime.fromtimestamp(ts, timezone.utc)
    state.updated_at = moment
    if event.type == EventType.status and state.finished_at is not None:
        state.finished_at = moment
