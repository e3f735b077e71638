"""Reattaching to a 50,000-event task: the first event comes without loading the history."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupyter_deepresearch.extension.models import Status
from jupyter_deepresearch.extension.store.base import TaskState
from jupyter_deepresearch.extension.store.files import FileTaskStore

EVENTS = 50_000
TASK_ID = "5" * 32


@pytest.fixture
def storage_dir(tmp_path: Path, jp_asyncio_loop: Any) -> Path:
    """A folder holding one completed task with 50,000 output events, written before start-up."""
    folder = tmp_path / "tasks"

    async def write() -> None:
        store = FileTaskStore(folder, flush_interval=60)
        await store.open()
        state = TaskState(task_id=TASK_ID, request={"query": "long"}, owner=None)
        assert await store.create(state)
        await store.append(state, "status", {"status": "running"})
        for n in range(EVENTS):
            await store.append(state, "output", {"text": f"Line {n:05d} of a long report."})
        await store.append(state, "result", {"report": "# Long\n\nDone.", "sources": []})
        await store.append(state, "status", {"status": Status.completed.value})
        await store.save(state, durable=True)
        await store.close()

    jp_asyncio_loop.run_until_complete(write())
    return folder


async def test_first_event_of_a_long_task_without_loading_its_history(
    http: httpx.AsyncClient, storage_dir: Path
) -> None:
    log_size = (storage_dir / f"{TASK_ID}.events.jsonl").stat().st_size
    tracemalloc.start()
    try:
        info = (await http.get(f"tasks/{TASK_ID}")).json()
        async with http.stream("GET", f"tasks/{TASK_ID}/events") as response:
            received = b""
            async for chunk in response.aiter_bytes():
                received += chunk
                if b"id: 1\n" in received:
                    # Measured as the first event arrives. The history as Python objects would
                    # take several times the log's size; a streamed read takes one batch.
                    _, peak = tracemalloc.get_traced_memory()
                    break
    finally:
        tracemalloc.stop()
    assert info["status"] == "completed" and info["last_event_id"] == EVENTS + 3
    assert b"id: 1\nevent: status\n" in received
    assert peak < log_size / 2, f"peak {peak} bytes for a {log_size}-byte log"
    # And a resume point near the end is one seek away.
    tail = (await http.get(f"tasks/{TASK_ID}/events", params={"after": EVENTS + 1})).text
    assert tail.count("id: ") == 2 and f"id: {EVENTS + 3}" in tail
