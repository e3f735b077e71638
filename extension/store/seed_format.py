"""The `{taskId}.json` snapshot: the seed's layout of the stored fields (`codec`), its schema.

A snapshot is one JSON object written on three lines: the first holds small fields only (so a
listing reads a few hundred bytes per task), the second the seed's `progress` and the rest of
what `TaskInfo` shows, the third the bulky `checkpoints` and `outputs` (so reading a task's
status never parses its history). Files written by the seed's own app (one line or
pretty-printed, no `version`) and our earlier two-line files load too.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..lifecycle import EventType, PauseReason, Status
from .base import Event, TaskState, TaskSummary
from .codec import decode_fields, encode_fields, iso, summary_from, utc

SNAPSHOT_VERSION = 1


class SnapshotError(ValueError):
    """A snapshot that is empty, not JSON, or not in the schema."""


class _Progress(BaseModel):
    model_config = ConfigDict(extra="allow")

    step: str
    percentage: float = Field(ge=0, le=100)
    status: Status
    messages: list[str]
    timestamp: datetime
    result: Any = None
    error: str | None = None


# What every file we write carries though the loader does without (it defaults the counters and
# checks the version in code): a file with our `version` has all of our fields, never null.
_OURS = (
    "status",
    "createdAt",
    "updatedAt",
    "attempts",
    "lastEventId",
    "runFirstEventId",
    "request",
)
_NEVER_NULL = ("status", "createdAt", "updatedAt")


def _written_form(schema: dict[str, Any]) -> None:
    """The model's JSON schema made the schema of the files we write (`SNAPSHOT_SCHEMA`)."""
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "jupyter-deepresearch task snapshot ({taskId}.json)"
    fields = schema["properties"]
    fields["version"] = {"const": SNAPSHOT_VERSION}
    for name in _NEVER_NULL:
        fields[name] = next(s for s in fields[name]["anyOf"] if s.get("type") != "null")
    # A result is a `ResearchResult`: its report is what every reader needs.
    fields["result"]["anyOf"][0].update(
        required=["report"],
        properties={"report": {"type": "string"}, "sources": {"type": "array"}},
    )
    schema["dependentRequired"] = {"version": list(_OURS)}


class _Snapshot(BaseModel):
    """A snapshot as the loader accepts it: the seed's files, and ours (with `version`)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_written_form)

    taskId: str = Field(min_length=1)
    progress: _Progress
    outputs: list[str]
    lastSaved: datetime
    version: int | None = None
    status: Status | None = None
    owner: str | None = None
    createdAt: datetime | None = None
    updatedAt: datetime | None = None
    finishedAt: datetime | None = None
    attempts: int = Field(default=0, ge=0)
    lastEventId: int = Field(default=0, ge=0)
    runFirstEventId: int = Field(default=1, ge=1)
    pausedBy: str | None = None
    request: dict[str, Any] = {}
    message: str = ""
    result: dict[str, Any] | None = None
    error: str | None = None
    checkpoints: dict[str, Any] = {}


# The JSON schema of the files we write, for their other readers (and our tests); `date-time`
# formats are checked by validators given a format checker.
SNAPSHOT_SCHEMA: dict[str, Any] = _Snapshot.model_json_schema()


# The stored fields in the snapshot's first line (after `taskId` and `version`), in its order.
_HEAD_FIELDS = (
    "status",
    "owner",
    "createdAt",
    "updatedAt",
    "finishedAt",
    "lastEventId",
    "runFirstEventId",
    "attempts",
    "pausedBy",
)


def snapshot_parts(state: TaskState, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The snapshot's head and body as dicts, with lists copied so the loop may keep appending."""
    fields = encode_fields(state)
    head: dict[str, Any] = {"taskId": state.task_id, "version": SNAPSHOT_VERSION}
    head.update((key, fields[key]) for key in _HEAD_FIELDS)
    body = {
        "progress": {
            "step": fields["step"],
            "percentage": fields["percentage"],
            "status": fields["status"],
            "messages": list(state.messages),
            "timestamp": fields["updatedAt"],
        },
        "outputs": list(state.outputs),
        "lastSaved": iso(now),
        "request": fields["request"],
        "message": fields["message"],
        "result": fields["result"],
        "error": fields["error"],
        "checkpoints": dict(state.checkpoints),
    }
    return head, body


_BULKY = ("checkpoints", "outputs")


def encode_snapshot(head: dict[str, Any], body: dict[str, Any]) -> bytes:
    """One JSON object on three lines: head, the rest of `TaskInfo`, then the bulky fields."""
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    middle = {k: v for k, v in body.items() if k not in _BULKY}
    bulky = {k: body[k] for k in _BULKY if k in body}
    first = json.dumps(head, **compact)  # type: ignore[arg-type]
    second = json.dumps(middle, **compact)  # type: ignore[arg-type]
    third = json.dumps(bulky, **compact)  # type: ignore[arg-type]
    return (first[:-1] + ",\n" + second[1:-1] + ",\n" + third[1:]).encode()


def decode_snapshot(data: bytes, task_id: str) -> tuple[TaskState, bool]:
    """The state a snapshot describes, and whether it came from the seed's app (no `version`)."""
    if not data.strip():
        raise SnapshotError("the file is empty")
    try:
        snap = _Snapshot.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise SnapshotError(f"{where}: {first['msg']}") from None
    if snap.taskId != task_id:
        raise SnapshotError(f"taskId {snap.taskId!r} does not match the file name")
    if snap.version is None:
        return _from_seed(snap), True
    if snap.version != SNAPSHOT_VERSION or snap.createdAt is None or snap.updatedAt is None:
        raise SnapshotError(f"unsupported snapshot version {snap.version}")
    if snap.lastEventId < snap.runFirstEventId - 1:
        raise SnapshotError("lastEventId is before runFirstEventId")
    # The model parsed and checked the fields; the progress holds those the seed also has.
    progress = snap.progress
    fields = {
        **vars(snap),
        "status": progress.status,
        "step": progress.step,
        "percentage": progress.percentage,
        "messages": progress.messages,
    }
    state = decode_fields(task_id, fields)
    state.outputs = snap.outputs
    state.checkpoints = snap.checkpoints
    return state, False


def _from_seed(snap: _Snapshot) -> TaskState:
    # The seed kept no event ids: its outputs become events 1..n, then result and status.
    progress = snap.progress
    saved = utc(snap.lastSaved)
    stamp = utc(progress.timestamp)
    state = TaskState(
        task_id=snap.taskId,
        request={},
        status=progress.status,
        step=progress.step,
        percentage=round(progress.percentage),
        message=progress.messages[-1] if progress.messages else "",
        messages=progress.messages,
        outputs=snap.outputs,
        created_at=min(saved, stamp),
        updated_at=max(saved, stamp),
        finished_at=max(saved, stamp) if progress.status.terminal else None,
        attempts=1,
    )
    if progress.status is Status.completed:
        seeded = progress.result if isinstance(progress.result, dict) else {}
        report = seeded.get("report")
        state.result = {
            "report": report if isinstance(report, str) else "\n".join(snap.outputs),
            "sources": seeded.get("sources") if isinstance(seeded.get("sources"), list) else [],
        }
    if progress.status is Status.failed:
        state.error = progress.error or "The task failed."
    if progress.status is Status.paused:
        state.paused_by = PauseReason.user.value
    # Ids 1..n: one per output, then the result (if any) and the status (see synthesize_events).
    state.last_event_id = len(state.outputs) + (state.result is not None) + 1
    return state


def synthesize_events(state: TaskState, first_id: int | None = None) -> list[Event]:
    """Events equivalent to a state without a log: its outputs, result, then its status.

    Ids end at `state.last_event_id` unless `first_id` fixes where they start (seed files).
    """
    kinds: list[tuple[str, dict[str, Any]]] = [
        (EventType.output.value, {"text": t}) for t in state.outputs
    ]
    if state.result is not None:
        kinds.append((EventType.result.value, dict(state.result)))
    status: dict[str, Any] = {"status": state.status.value}
    if state.error:
        status["error"] = state.error
    if state.paused_by:
        status["reason"] = state.paused_by
    kinds.append((EventType.status.value, status))
    start = first_id if first_id is not None else state.last_event_id - len(kinds) + 1
    start = max(start, state.run_first_event_id)
    events = [Event(start + i, kind, data) for i, (kind, data) in enumerate(kinds)]
    return events if first_id is not None else [e for e in events if e.id <= state.last_event_id]


def read_summary(head: bytes, task_id: str) -> TaskSummary | None:
    """A listing row from a snapshot's first line, or None if it is not our two-line form."""
    line, newline, _ = head.partition(b"\n")
    if not newline or not line.endswith(b","):
        return None
    try:
        fields = json.loads(line[:-1] + b"}")
        if fields.get("version") != SNAPSHOT_VERSION or fields.get("taskId") != task_id:
            return None
        return summary_from(task_id, fields)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


_COUNTERS = {"attempts", "lastEventId", "runFirstEventId"}


def decode_head(first: bytes, second: bytes, task_id: str) -> TaskState | None:
    """A state without outputs or checkpoints from a snapshot's first two lines.

    None if the lines are not our three-line form (the caller then loads the whole file).
    """
    if not (first.endswith(b",\n") and second.endswith(b",\n")):
        return None
    try:
        head = json.loads(first[:-2] + b"}")
        body = json.loads(b"{" + second[:-2] + b"}")
        if head.get("version") != SNAPSHOT_VERSION or head.get("taskId") != task_id:
            return None
        # Required here though they default elsewhere: without them the whole file is read.
        if not head.keys() >= _COUNTERS:
            return None
        progress = body["progress"]
        fields = {
            **head,
            "request": body["request"],
            "message": body.get("message", ""),
            "result": body.get("result"),
            "error": body.get("error"),
            "step": progress["step"],
            "percentage": progress["percentage"],
            "messages": progress["messages"],
        }
        state = decode_fields(task_id, fields)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return state
