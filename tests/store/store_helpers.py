"""Helpers shared by the store tests (imported by name: tests/store is on sys.path).

Tests are plain functions that run one coroutine with `asyncio.run` (`@async_test`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema

from dr_testing.stores import async_test
from jupyter_deepresearch.extension.store.base import Event, TaskState
from jupyter_deepresearch.extension.store.files import FileTaskStore
from jupyter_deepresearch.extension.store.seed_format import SNAPSHOT_SCHEMA

__all__ = [
    "async_test",
    "collect",
    "finish",
    "new_state",
    "opened",
    "run_task",
    "validate_snapshot",
]

_FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER
# Without its optional checker (rfc3339-validator) jsonschema passes any date-time unchecked.
assert "date-time" in _FORMATS.checkers, "install rfc3339-validator: times would go unchecked"


def validate_snapshot(doc: Any) -> None:
    """`doc` is a snapshot as we write it (`SNAPSHOT_SCHEMA`, its times included)."""
    jsonschema.validate(doc, SNAPSHOT_SCHEMA, format_checker=_FORMATS)


@contextlib.asynccontextmanager
async def opened(folder: Path, **options: Any) -> AsyncIterator[FileTaskStore]:
    """An open store on `folder` (fast flushing unless told otherwise), closed afterwards."""
    options.setdefault("flush_interval", 0.05)
    store = FileTaskStore(folder, **options)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def new_state(task_id: str | None = None, **request: Any) -> TaskState:
    """A fresh queued task with a public request."""
    return TaskState(
        task_id=task_id or uuid.uuid4().hex,
        request={"query": "How does asyncio cancel a task?", **request},
        owner="alice",
    )


async def run_task(store: FileTaskStore, outputs: int = 3) -> TaskState:
    """A created, running task with a checkpoint and `outputs` progress/output pairs."""
    state = new_state()
    assert await store.create(state)
    await store.append(state, "status", {"status": "running"})
    state.attempts = 1
    await store.save(state)
    await store.save_checkpoint(state, "plan", {"queries": ["a", "b"]})
    for i in range(outputs):
        await store.append(state, "progress", {"step": "search", "percentage": 10 + i})
        await store.append(state, "output", {"text": f"chunk {i}"})
    return state


async def finish(store: FileTaskStore, state: TaskState, report: str = "# R") -> None:
    """Complete the task as the manager does: result, then status, then a durable save."""
    await store.append(state, "result", {"report": report, "sources": []})
    await store.append(state, "status", {"status": "completed"})
    await store.save(state, durable=True)


async def collect(store: FileTaskStore, task_id: str, after: int = 0) -> list[Event]:
    """All events `events()` yields, as a list."""
    return [event async for event in store.events(task_id, after)]
