"""`jupyter deepresearch export` and `import`: a round trip through plain files, on the files
store and on Redis, with stable diff-friendly files and nothing clobbered."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from dr_testing.cli import run_cli
from jupyter_deepresearch.extension.app import DeepResearchApp
from jupyter_deepresearch.extension.fingerprint import task_id_for
from jupyter_deepresearch.extension.models import ReportSettings, ResearchRequest, public_request
from jupyter_deepresearch.extension.recordings import recording_key
from jupyter_deepresearch.extension.store.base import Event, TaskState, TaskStore

REQUEST = ResearchRequest(
    query="How do  recordings work?", report=ReportSettings(breadth=1, depth=1)
)
RESULT = {
    "report": "# Recordings\n\nThey replay [1].\n",
    "sources": [{"id": "python:json", "title": "json", "url": "https://docs.python.org/3/"}],
}
RUN = [
    ("status", {"status": "queued"}),
    ("status", {"status": "running"}),
    ("progress", {"step": "plan", "percentage": 10, "message": "Planning"}),
    ("output", {"text": "# Recordings\n"}),
    ("progress", {"step": "report", "percentage": 90}),
    ("output", {"text": "They replay [1].\n"}),
    ("result", RESULT),
    ("status", {"status": "completed"}),
]

Settings = Callable[[str], dict[str, Any]]


@pytest.fixture(params=["files", "redis"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """`DeepResearchApp` settings of a store named `name`, of the backend under test."""
    if request.param == "files":
        return lambda name: {"storage_dir": str(tmp_path / name)}
    redis_url = request.getfixturevalue("redis_url")
    run = uuid.uuid4().hex[:8]
    return lambda name: {"store": "redis", "redis_url": f"{redis_url}?prefix=rec{run}{name}:"}


def make_store(settings: dict[str, Any]) -> TaskStore:
    return DeepResearchApp(config=Config({"DeepResearchApp": settings})).make_store()


async def add_task(settings: dict[str, Any], owner: str, run: list[Any]) -> str:
    store = make_store(settings)
    await store.open()
    try:
        state = TaskState(
            task_id=task_id_for(REQUEST, owner), request=public_request(REQUEST), owner=owner
        )
        assert await store.create(state)
        for kind, data in run:
            await store.append(state, kind, data)
        await store.save(state, durable=True)
        return state.task_id
    finally:
        await store.close()


async def read_task(settings: dict[str, Any], task_id: str) -> tuple[TaskState, list[Event]]:
    store = make_store(settings)
    await store.open()
    try:
        state = await store.load(task_id)
        assert state is not None
        return state, [event async for event in store.events(task_id)]
    finally:
        await store.close()


def files_of(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and folder under `folder` with its bytes and mtime."""
    found = {".": (b"", folder.stat().st_mtime_ns)}
    for path in sorted(folder.rglob("*")):
        data = b"" if path.is_dir() else path.read_bytes()
        found[str(path.relative_to(folder))] = (data, path.stat().st_mtime_ns)
    return found


def test_export_then_import_round_trip(store_settings: Settings, tmp_path: Path) -> None:
    source, target = store_settings("source"), store_settings("target")
    alice = asyncio.run(add_task(source, "alice", RUN))
    asyncio.run(add_task(source, "bob", RUN))  # the same request: one recording
    running = asyncio.run(add_task({**source}, "dave", RUN[:3]))
    folder = tmp_path / "recordings"
    stored = source.get("storage_dir")
    before = files_of(Path(stored)) if stored else None

    exported = run_cli(tmp_path, "export", "--to", str(folder), settings=source)
    assert exported.returncode == 0, exported.stderr
    if stored:  # export reads the store and writes nothing into it (no listing cache either)
        assert files_of(Path(stored)) == before
    key = recording_key(REQUEST)
    assert f"exported {key}" in exported.stdout
    assert "the same request was exported from another task" in exported.stdout
    assert [p.name for p in folder.iterdir()] == [key]
    assert running not in exported.stdout  # only completed tasks, unless named

    # Stable, diff-friendly files: sorted keys, one event per line, ids from 1, no owner.
    task_text = (folder / key / "task.json").read_text()
    task = json.loads(task_text)
    assert task_text == json.dumps(task, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert task == {"format": 1, "request": public_request(REQUEST), "result": RESULT}
    lines = (folder / key / "events.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": n, "type": kind, "data": data} for n, (kind, data) in enumerate(RUN, start=1)
    ]
    everything = task_text + "\n".join(lines)
    assert "alice" not in everything and "bob" not in everything

    again = run_cli(tmp_path, "export", "--to", str(folder), settings=source)
    assert again.returncode == 0 and f"unchanged {key}" in again.stdout

    imported = run_cli(tmp_path, "import", str(folder), "--owner=carol", settings=target)
    assert imported.returncode == 0, imported.stderr
    carol = task_id_for(REQUEST, "carol")
    assert f"imported {key} as task {carol}" in imported.stdout
    state, events = asyncio.run(read_task(target, carol))
    original, original_events = asyncio.run(read_task(source, alice))
    assert (state.status.value, state.owner, state.attempts) == ("completed", "carol", 1)
    assert state.result == original.result == RESULT
    assert events == original_events

    # Importing again, or into a store that has the task, keeps what is there.
    twice = run_cli(tmp_path, "import", str(folder), "--owner=carol", settings=target)
    assert twice.returncode == 0 and f"task {carol} is already in the store (kept)" in twice.stdout
    kept = run_cli(tmp_path, "import", str(folder), "--owner=dave", settings=source)
    assert f"task {running} is already in the store (kept)" in kept.stdout
    still_running, _ = asyncio.run(read_task(source, running))
    assert still_running.status.value == "running"


def test_export_names_what_it_skipped(tmp_path: Path) -> None:
    source = {"storage_dir": str(tmp_path / "tasks")}
    running = asyncio.run(add_task(source, "alice", RUN[:2]))
    result = run_cli(
        tmp_path, "export", "--to", str(tmp_path / "out"), running, "0" * 32, settings=source
    )
    assert result.returncode == 1
    assert f"skipped {running}: it is running, not completed" in result.stderr
    assert f"skipped {'0' * 32}: no such task" in result.stderr
    bad = run_cli(tmp_path, "export", "--to", str(tmp_path / "out"), "../etc", settings=source)
    assert bad.returncode == 1 and "'../etc' is not a task id" in bad.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_export_filters_by_owner_and_query(tmp_path: Path) -> None:
    source = {"storage_dir": str(tmp_path / "tasks")}
    asyncio.run(add_task(source, "alice", RUN))
    folder = tmp_path / "out"
    for option, exported in (
        ("--owner=bob", False),
        ("--query=nothing like it", False),
        ("--owner=alice", True),
        ("--query=RECORDINGS work", True),
    ):
        result = run_cli(tmp_path, "export", "--to", str(folder), option, settings=source)
        assert result.returncode == 0, result.stderr
        assert ("nothing exported" not in result.stdout) == exported, (option, result.stdout)
