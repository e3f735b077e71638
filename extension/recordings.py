"""Recorded research: finished tasks as plain files to commit beside notebooks, and back.

A recordings folder (written by `jupyter deepresearch export`, read by `import` and by the
server's `replay_dir`) holds one folder per recorded request:

    DIR/<key>/task.json      {"format": 1, "request": {...}, "result": {...}}
    DIR/<key>/events.jsonl   the run's events, one per line: {"data": {...}, "id": n, "type": "..."}

`<key>` is the request's owner-independent task id (`recording_key`): the same request gets the
same folder on every machine and for every user, and exporting it again rewrites the same
files. JSON keys are sorted and event ids start at 1, so a re-recording diffs line by line.
Nothing in the files names a user, a machine or a time, and nothing secret: the request is the
stored public form (no `api_key`, no URL user-info) and every text passes `redact.scrub`.

Reading checks everything (`read_recording`), because a committed folder is edited by hand,
merged and truncated: a damaged recording is a `BadRecording` naming its file and the problem.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import DeepResearchError
from .fingerprint import task_id_for
from .lifecycle import Status
from .models import ResearchRequest, ResearchResult, validation_message
from .redact import scrub
from .store._atomic import atomic_write
from .store.base import EVENT_TYPES, Event, TaskState

FORMAT_VERSION = 1
TASK_FILE = "task.json"
EVENTS_FILE = "events.jsonl"
# A recording is one research report and its progress: far below this. The cap keeps a
# hostile or mistaken file (a video committed by accident) from filling the server's memory.
MAX_FILE_BYTES = 64 * 1024 * 1024
_HEX = frozenset("0123456789abcdef")


class BadRecording(DeepResearchError):
    """A recording that cannot be used; the message names its file and what is wrong."""

    # The request was fine; the recording the server was given for it is not.
    status_code = 409

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"Recording {path} cannot be used: {problem}. Export it again "
            "(`jupyter deepresearch export`) or delete it."
        )
        self.path = path


@dataclass(frozen=True)
class Recording:
    """One recorded run: its public request, its events (ids from 1) and its result."""

    key: str
    request: dict[str, Any]
    events: tuple[Event, ...]
    result: dict[str, Any]

    def research_request(self) -> ResearchRequest:
        return ResearchRequest.model_validate(self.request, strict=False)


def recording_key(request: ResearchRequest) -> str:
    """The owner-independent task id of a request (secrets and `restart` never count)."""
    return task_id_for(request, owner=None)


def is_key(name: str) -> bool:
    return len(name) == 32 and set(name) <= _HEX


# ------------------------------------------------------------------ from a task to files


def recording_of(state: TaskState, events: Iterable[Event]) -> Recording:
    """The recording of a completed task's current run (ValueError if it is not completed)."""
    if state.status is not Status.completed or state.result is None:
        raise ValueError(f"task {state.task_id} is {state.status.value}, not completed")
    request = ResearchRequest.model_validate(state.request, strict=False)
    # Ids are renumbered from 1: a task restarted before it was recorded numbers its run from
    # where the old run stopped, which says nothing about the recording.
    renumbered = tuple(
        Event(index, event.type, _scrubbed(event.data))
        for index, event in enumerate(events, start=1)
    )
    return Recording(
        key=recording_key(request),
        request=_scrubbed(state.request),
        events=renumbered,
        result=_scrubbed(
            ResearchResult.model_validate(state.result).model_dump(mode="json", exclude_unset=True)
        ),
    )


def write_recording(folder: Path, recording: Recording) -> Path:
    """Write `recording` into `folder/<key>/` (each file replaced atomically); that path."""
    target = folder / recording.key
    target.mkdir(parents=True, exist_ok=True)
    task = {"format": FORMAT_VERSION, "request": recording.request, "result": recording.result}
    atomic_write(target / TASK_FILE, (_dumps(task, indent=2) + "\n").encode())
    lines = (
        _dumps({"id": event.id, "type": event.type, "data": event.data}) + "\n"
        for event in recording.events
    )
    atomic_write(target / EVENTS_FILE, "".join(lines).encode())
    return target


def same_recording(a: Recording, b: Recording) -> bool:
    return (a.key, a.request, a.events, a.result) == (b.key, b.request, b.events, b.result)


def _dumps(value: Any, indent: int | None = None) -> str:
    separators = None if indent else (",", ":")
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, indent=indent, separators=separators
    )


def _scrubbed(value: Any) -> Any:
    """`value` with every remembered secret removed from every string in it."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    return value


# ------------------------------------------------------------------ from files to a recording


def recording_folders(folder: Path) -> Iterator[tuple[str, Path]]:
    """(name, path) of every entry of a recordings folder, sorted; hidden entries skipped."""
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.name.startswith("."):
            yield entry.name, Path(entry.path)


def read_recording(path: Path) -> Recording:
    """The recording in folder `path`, fully checked; `BadRecording` says what is wrong."""
    key = path.name
    if not is_key(key):
        raise BadRecording(path, "its folder name is not a recording key (32 hex digits)")
    _plain_folder(path)
    task = _json_object(_read(path / TASK_FILE), path / TASK_FILE)
    if task.get("format") != FORMAT_VERSION:
        raise BadRecording(
            path / TASK_FILE, f"format {task.get('format')!r} is not {FORMAT_VERSION}"
        )
    unknown = set(task) - {"format", "request", "result"}
    if unknown:
        raise BadRecording(path / TASK_FILE, f"unknown fields {sorted(unknown)}")
    try:
        request = ResearchRequest.model_validate(task.get("request"), strict=False)
        result = ResearchResult.model_validate(task.get("result")).model_dump(
            mode="json", exclude_unset=True
        )
    except ValidationError as error:
        raise BadRecording(path / TASK_FILE, validation_message(error)) from None
    if recording_key(request) != key:
        raise BadRecording(
            path / TASK_FILE,
            "its request does not match its folder name (was it edited by hand? a changed "
            "request is a new recording)",
        )
    events = _events(path / EVENTS_FILE, result)
    return Recording(key=key, request=task["request"], events=events, result=result)


def _plain_folder(path: Path) -> None:
    # A committed folder could point anywhere through a symlink: recordings are plain files.
    try:
        mode = path.lstat().st_mode
    except OSError as error:
        raise BadRecording(path, error.strerror or str(error)) from None
    if not stat.S_ISDIR(mode):
        raise BadRecording(path, "it is not a folder (symbolic links are not followed)")


def _read(path: Path) -> bytes:
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            raise BadRecording(path, "it is not a regular file (symbolic links are not followed)")
        if info.st_size > MAX_FILE_BYTES:
            raise BadRecording(path, f"it is {info.st_size} bytes, over {MAX_FILE_BYTES}")
        return path.read_bytes()
    except FileNotFoundError:
        raise BadRecording(path, "the file is missing") from None
    except OSError as error:
        raise BadRecording(path, error.strerror or str(error)) from None


def _json_object(data: bytes, path: Path, line: int | None = None) -> dict[str, Any]:
    where = path if line is None else Path(f"{path}:{line}")
    try:
        value = json.loads(data)
    except RecursionError:
        raise BadRecording(where, "it is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRecording(where, f"not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise BadRecording(where, "not a JSON object")
    return value


def _events(path: Path, result: dict[str, Any]) -> tuple[Event, ...]:
    """The events of an events file, checked by folding them as a store would."""
    state = TaskState(task_id="recording", request={})
    events = []
    for number, line in enumerate(_read(path).splitlines(), start=1):
        record = _json_object(line, path, number)
        where = Path(f"{path}:{number}")
        if set(record) != {"id", "type", "data"}:
            raise BadRecording(where, "an event has exactly the fields data, id and type")
        event_id, kind, data = record["id"], record["type"], record["data"]
        if event_id != number or isinstance(event_id, bool):
            raise BadRecording(where, f"event ids count 1, 2, 3...; this one is {event_id!r}")
        if kind not in EVENT_TYPES or not isinstance(data, dict):
            raise BadRecording(where, f"{kind!r} is not an event type with a data object")
        event = Event(event_id, kind, data)
        try:
            state.apply(event)
        except (KeyError, ValueError, TypeError) as error:
            raise BadRecording(where, f"a {kind} event without a valid {error}") from None
        events.append(event)
    if state.status is not Status.completed:
        raise BadRecording(path, "the run does not end completed (is the file cut short?)")
    if (
        state.result is None
        or ResearchResult.model_validate(state.result).model_dump(mode="json", exclude_unset=True)
        != result
    ):
        raise BadRecording(path, f"its result event differs from the result in {TASK_FILE}")
    return tuple(events)
