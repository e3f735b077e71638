"""The task state's stored form, shared by every backend: its times and its fields.

A stored task is a set of named fields (the names of the seed's JSON, camelCase) whose values are
JSON values: times as `iso()` text, the status as its value. The files store lays them out in its
snapshot (`seed_format`: some in the head line, some under `progress`), the Redis store keeps each
as a JSON string in the task's hash (`hash_fields`). Both read them back through `decode_fields`,
so a field means the same, and defaults the same, in every store. Outputs and checkpoints are
not fields: each store keeps them its own way (snapshot lines, a stream and a hash).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..lifecycle import Status
from .base import TaskState, TaskSummary

# The fields a listing row (`TaskSummary`) is made of: all that `summary_from` reads.
LISTING_FIELDS = ("status", "owner", "createdAt", "updatedAt", "finishedAt", "pausedBy")


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and `Z`, as the seed wrote it."""
    moment = moment.astimezone(timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Parse `iso()` output (and any ISO-8601 with offset); Python 3.10 lacks `Z` support."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def utc(moment: datetime) -> datetime:
    """A time without a zone taken as UTC (how the seed's files mean theirs)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _time(value: str | datetime) -> datetime:
    # Text from a store; a `datetime` when a pydantic model already parsed the snapshot.
    return utc(value) if isinstance(value, datetime) else parse_iso(value)


def encode_fields(state: TaskState) -> dict[str, Any]:
    """Every stored field of a state as a JSON value (lists not copied), by stored name."""
    return {
        "request": state.request,
        "owner": state.owner,
        "status": state.status.value,
        "step": state.step,
        "percentage": state.percentage,
        "message": state.message,
        "messages": state.messages,
        "createdAt": iso(state.created_at),
        "updatedAt": iso(state.updated_at),
        "finishedAt": iso(state.finished_at) if state.finished_at else None,
        "attempts": state.attempts,
        "lastEventId": state.last_event_id,
        "runFirstEventId": state.run_first_event_id,
        "result": state.result,
        "error": state.error,
        "pausedBy": state.paused_by,
    }


def decode_fields(task_id: str, fields: Mapping[str, Any]) -> TaskState:
    """The state (without outputs or checkpoints) that stored fields describe.

    `request`, `status`, `createdAt` and `updatedAt` are required (`KeyError`); the others
    default as a fresh task's. Values of the wrong type raise `ValueError` or `TypeError`.
    """
    finished = fields.get("finishedAt")
    return TaskState(
        task_id=task_id,
        request=dict(fields["request"]),
        owner=fields.get("owner"),
        status=Status(fields["status"]),
        step=str(fields.get("step", "")),
        percentage=int(fields.get("percentage", 0)),
        message=str(fields.get("message", "")),
        messages=[str(m) for m in fields.get("messages", ())],
        created_at=_time(fields["createdAt"]),
        updated_at=_time(fields["updatedAt"]),
        finished_at=_time(finished) if finished else None,
        attempts=int(fields.get("attempts", 0)),
        last_event_id=int(fields.get("lastEventId", 0)),
        run_first_event_id=int(fields.get("runFirstEventId", 1)),
        result=fields.get("result"),
        error=fields.get("error"),
        paused_by=fields.get("pausedBy"),
    )


def summary_from(task_id: str, fields: Mapping[str, Any]) -> TaskSummary:
    """A listing row from stored fields (`LISTING_FIELDS` are enough)."""
    finished = fields.get("finishedAt")
    return TaskSummary(
        task_id=task_id,
        status=Status(fields["status"]),
        owner=fields.get("owner"),
        created_at=parse_iso(str(fields["createdAt"])),
        updated_at=parse_iso(str(fields["updatedAt"])),
        finished_at=parse_iso(finished) if finished else None,
        paused_by=fields.get("pausedBy"),
    )


def summary_of(state: TaskState) -> TaskSummary:
    """The listing row of a loaded state."""
    return TaskSummary(
        task_id=state.task_id,
        status=state.status,
        owner=state.owner,
        created_at=state.created_at,
        updated_at=state.updated_at,
        finished_at=state.finished_at,
        paused_by=state.paused_by,
    )


# The Redis form: a hash with one JSON string per field (so types survive the round trip), plus
# `taskId` and hidden fields of the store's own (names starting with `_`, e.g. `_writer`).


def hash_value(value: Any) -> str:
    """A field value as the task hash stores it."""
    return json.dumps(value, ensure_ascii=False)


def hash_fields(state: TaskState) -> dict[str, str]:
    """The task hash's fields of a state."""
    fields = {"taskId": state.task_id, **encode_fields(state)}
    return {key: hash_value(value) for key, value in fields.items()}


def from_hash(task_id: str, raw: Mapping[bytes, bytes]) -> TaskState:
    """The state a task hash (`HGETALL`) describes; hidden fields are passed over."""
    fields = {k.decode(): json.loads(v) for k, v in raw.items() if not k.startswith(b"_")}
    return decode_fields(task_id, fields)


def hash_summary(task_id: str, values: list[bytes | None]) -> TaskSummary:
    """A listing row from the hash's `LISTING_FIELDS` values (`HMGET`, in that order)."""
    decoded = (json.loads(v) if v is not None else None for v in values)
    return summary_from(task_id, dict(zip(LISTING_FIELDS, decoded, strict=True)))
