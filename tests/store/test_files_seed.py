"""A folder written by the seed's own app (only `{taskId}.json` files) loads as it is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from store_helpers import async_test, collect, opened, validate_snapshot

from jupyter_deepresearch.extension.models import Status
from jupyter_deepresearch.extension.store.files import FileTaskStore

SEED = Path(__file__).parent / "seed_tasks"
RUNNING = "abc123def456"  # the seed document's own example: not a 32-hex id
COMPLETED = "0123456789abcdef0123456789abcdef"
PAUSED = "fedcba9876543210fedcba9876543210"
FAILED = "00000000000000000000000000000abc"


@pytest.fixture
def seed_folder(folder: Path) -> Path:
    shutil.copytree(SEED, folder)
    return folder


def test_fixtures_follow_the_schema() -> None:
    for path in SEED.glob("*.json"):
        validate_snapshot(json.loads(path.read_bytes()))


@async_test
async def test_every_seed_task_is_listed_without_touching_its_files(seed_folder: Path) -> None:
    before = {p.name: p.read_bytes() for p in seed_folder.iterdir() if p.is_file()}
    async with opened(seed_folder) as store:
        rows = {row.task_id: row for row in await store.summaries()}
        assert {r: rows[r].status for r in rows} == {
            RUNNING: Status.running,
            COMPLETED: Status.completed,
            PAUSED: Status.paused,
            FAILED: Status.failed,
        }
        for task_id in rows:
            assert await store.load(task_id) is not None
    after = {p.name: p.read_bytes() if p.is_file() else b"" for p in seed_folder.iterdir()}
    assert {name: after[name] for name in before} == before  # the seed's files, byte for byte
    assert set(after) - set(before) <= {".cache"}  # our rows of them, by stamp (.cache/listing)


@async_test
async def test_seed_files_are_read_once_then_listed_from_the_cache(
    seed_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: seed-format files (no head line, no sidecars) were read whole on every
    listing, so `GET health` on 10,000 of them took seconds, every time."""
    from jupyter_deepresearch.extension.store import _folder

    reads: list[str] = []
    real = _folder.decode_snapshot

    def counted(data: bytes, task_id: str) -> Any:
        reads.append(task_id)
        return real(data, task_id)

    monkeypatch.setattr(_folder, "decode_snapshot", counted)
    async with opened(seed_folder) as store:
        first = {row.task_id: row.status for row in await store.summaries()}
        assert len(reads) == len(first) == 4
        reads.clear()
        again = {row.task_id: row.status for row in await store.summaries()}
        assert (again, reads) == (first, [])
        await store.health()
        assert reads == []
    async with opened(seed_folder) as store:  # a restart: the persisted cache serves the rows
        assert {row.task_id: row.status for row in await store.summaries()} == first
        assert reads == []


@async_test
async def test_completed_seed_task_replays_outputs_and_joined_report(seed_folder: Path) -> None:
    outputs = json.loads((seed_folder / f"{COMPLETED}.json").read_bytes())["outputs"]
    async with opened(seed_folder) as store:
        state = await store.load(COMPLETED)
        assert state is not None
        assert state.result is not None
        assert state.result["report"] == "\n".join(outputs)
        assert state.info().result is not None
        events = await collect(store, COMPLETED)
        n = len(outputs)
        assert [e.id for e in events] == list(range(1, n + 3))
        assert [e.data["text"] for e in events[:n]] == outputs
        assert {e.type for e in events[:n]} == {"output"}
        assert (events[n].type, events[n].data["report"]) == ("result", "\n".join(outputs))
        assert (events[n + 1].type, events[n + 1].data) == ("status", {"status": "completed"})
        assert state.last_event_id == n + 2
        assert [e.id for e in await collect(store, COMPLETED, after=n)] == [n + 1, n + 2]


@async_test
async def test_running_and_failed_seed_tasks_replay(seed_folder: Path) -> None:
    async with opened(seed_folder) as store:
        running = await collect(store, RUNNING)
        assert [(e.id, e.type) for e in running] == [
            (1, "output"),
            (2, "output"),
            (3, "output"),
            (4, "status"),
        ]
        assert running[0].data == {"text": "# 研究报告开始"}
        failed = await store.load(FAILED)
        assert failed is not None
        assert failed.error == "Search provider returned 502"
        assert [e.data for e in await collect(store, FAILED)] == [
            {"status": "failed", "error": "Search provider returned 502"}
        ]


@async_test
async def test_resumed_seed_task_gets_sidecars_and_keeps_ids(seed_folder: Path) -> None:
    async with opened(seed_folder) as store:
        state = await store.load(PAUSED)
        assert state is not None and state.last_event_id == 2  # one output, one status
        await store.append(state, "status", {"status": "running"})
        await store.append(state, "output", {"text": "## Search"})
        state.attempts += 1
        await store.save(state)
        assert (seed_folder / f"{PAUSED}.events.jsonl").exists()
        assert (seed_folder / f"{PAUSED}.idx").exists()
    doc = json.loads((seed_folder / f"{PAUSED}.json").read_bytes())
    validate_snapshot(doc)
    assert doc["outputs"] == ["# Plan", "## Search"]
    assert doc["progress"]["status"] == "running"
    reopened = FileTaskStore(seed_folder)
    events = await collect(reopened, PAUSED)
    assert [(e.id, e.type) for e in events] == [
        (1, "output"),
        (2, "status"),
        (3, "status"),
        (4, "output"),
    ]
    assert [e.id for e in await collect(reopened, PAUSED, after=2)] == [3, 4]
    loaded = await reopened.load(PAUSED)
    assert loaded is not None and loaded.outputs == ["# Plan", "## Search"]
