"""Reading a recordings folder: every kind of damage is a `BadRecording` naming the file and the
problem (a committed folder is edited by hand, merged, truncated, or hostile)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from dr_testing.cli import run_cli
from jupyter_deepresearch.extension.models import ResearchRequest, public_request
from jupyter_deepresearch.extension.recordings import (
    BadRecording,
    Recording,
    read_recording,
    recording_key,
    write_recording,
)
from jupyter_deepresearch.extension.store.base import Event

REQUEST = ResearchRequest(query="What is a recording?")
RESULT = {"report": "# Answer\n", "sources": []}
EVENTS = (
    Event(1, "status", {"status": "queued"}),
    Event(2, "status", {"status": "running"}),
    Event(3, "output", {"text": "# Answer\n"}),
    Event(4, "result", RESULT),
    Event(5, "status", {"status": "completed"}),
)


def recorded(folder: Path, query: str = REQUEST.query) -> Path:
    request = ResearchRequest(query=query)
    return write_recording(
        folder, Recording(recording_key(request), public_request(request), EVENTS, RESULT)
    )


def edit_events(change: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        events = path / "events.jsonl"
        events.write_text("\n".join(change(events.read_text().splitlines())) + "\n")

    return edit


def edit_task(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        task = json.loads((path / "task.json").read_text())
        change(task)
        (path / "task.json").write_text(json.dumps(task))

    return edit


def symlinked_events(path: Path) -> None:
    outside = path.parent.parent / "outside.jsonl"
    outside.write_text((path / "events.jsonl").read_text())
    (path / "events.jsonl").unlink()
    (path / "events.jsonl").symlink_to(outside)


DAMAGE = {
    "cut-short": (edit_events(lambda lines: lines[:-1]), "does not end completed"),
    "not-json": (edit_events(lambda lines: [*lines[:2], "{oops", *lines[3:]]), "not valid JSON"),
    "id-gap": (
        edit_events(lambda lines: [lines[0], *lines[2:]]),
        "event ids count 1, 2, 3...; this one is 3",
    ),
    "unknown-type": (
        edit_events(lambda lines: [*lines[:2], '{"data":{},"id":3,"type":"boom"}', *lines[3:]]),
        "'boom' is not an event type",
    ),
    "bad-status": (
        edit_events(lambda lines: ['{"data":{"status":"zzz"},"id":1,"type":"status"}', *lines[1:]]),
        "a status event without a valid",
    ),
    "result-differs": (
        edit_task(lambda task: task["result"].update(report="# Other\n")),
        "its result event differs from the result in task.json",
    ),
    "request-edited": (
        edit_task(lambda task: task["request"].update(query="Another question")),
        "does not match its folder name",
    ),
    "invalid-request": (
        edit_task(lambda task: task["request"].update(colour="red")),
        "Invalid request: colour: unknown field",
    ),
    "future-format": (edit_task(lambda task: task.update(format=2)), "format 2 is not 1"),
    "no-events": (lambda path: (path / "events.jsonl").unlink(), "the file is missing"),
    "symlinked-file": (symlinked_events, "not a regular file"),
    "nested-bomb": (
        lambda path: (path / "task.json").write_text("[" * 100_000),
        "nested too deeply",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_recording_names_file_and_problem(tmp_path: Path, damage: str) -> None:
    path = recorded(tmp_path / "recordings")
    read_recording(path)  # sound before the damage
    spoil, problem = DAMAGE[damage]
    spoil(path)
    with pytest.raises(BadRecording) as caught:
        read_recording(path)
    assert problem in caught.value.message
    assert str(path) in caught.value.message
    assert "jupyter deepresearch export" in caught.value.message


def test_symlinked_recording_folder_is_not_followed(tmp_path: Path) -> None:
    real = recorded(tmp_path / "elsewhere")
    folder = tmp_path / "recordings"
    folder.mkdir()
    os.symlink(real, folder / real.name)
    with pytest.raises(BadRecording, match="not a folder"):
        read_recording(folder / real.name)


def test_import_loads_sound_recordings_and_names_damaged_ones(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    good = recorded(folder, "A sound recording")
    bad = recorded(folder, "A damaged recording")
    (bad / "events.jsonl").write_text("")
    (folder / "notes.txt").write_text("not a recording")
    settings = {"storage_dir": str(tmp_path / "tasks"), "fingerprint_scope": "shared"}
    result = run_cli(tmp_path, "import", str(folder), settings=settings)
    assert result.returncode == 1
    assert f"imported {good.name} as task {good.name}" in result.stdout  # shared: same id
    assert f"skipped {bad.name}: Recording {bad / 'events.jsonl'}" in result.stderr
    assert "skipped notes.txt: " in result.stderr
    assert "Traceback" not in result.stderr
