"""The one rule for what a task id may be, used by routes, manager, stores and the OpenAPI document.

Ids this extension creates are 32 lower-case hex digits (see `fingerprint.task_id_for`); a
folder written by the seed's own app holds other names (its own example is `abc123def456`),
and every id a listing shows must work on every route. So an id is any name that is safe
everywhere it is used: as a file name (`{id}.json`, `{id}.events.jsonl`, ...: no path
separator, no dot, so never `..` nor another task's file), as the last part of a Redis key
(`{prefix}task:{id}`: no colon, so never a key of another kind, and no glob character), in a
URL path segment and a header. Upper case is left out because on a case-insensitive disk
(macOS, Windows) `ABC.json` and `abc.json` are one file: two ids must never name one task.
Pure module: the kernel side imports it.
"""

from __future__ import annotations

import re

MAX_TASK_ID_LENGTH = 128
# Anchored for JSON Schema (whose `pattern` is not); always applied with `fullmatch`, because
# `$` alone also matches before a trailing line end.
TASK_ID_PATTERN = rf"^[a-z0-9_-]{{1,{MAX_TASK_ID_LENGTH}}}$"
TASK_ID_RULE = f"1 to {MAX_TASK_ID_LENGTH} lower-case letters, digits, '-' or '_'"

_TASK_ID = re.compile(TASK_ID_PATTERN)


def is_task_id(value: str) -> bool:
    """Whether `value` may name a task (checked before any lookup, path or key is built)."""
    return _TASK_ID.fullmatch(value) is not None


def checked_task_id(value: str) -> str:
    """`value` if it may name a task, else ValueError naming the rule."""
    if not is_task_id(value):
        raise ValueError(f"Malformed task id {_shown(value)}: expected {TASK_ID_RULE}.")
    return value


def _shown(value: str) -> str:
    """The id as quoted in a message: at most a line's worth of a long one."""
    return repr(value) if len(value) <= 80 else repr(value[:80]) + "..."
