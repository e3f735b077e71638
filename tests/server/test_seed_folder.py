"""A folder written by the seed's own app (only `{taskId}.json` files) is served as it is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from dr_testing.sse_events import parse_events

SEED_TASKS = Path(__file__).resolve().parent.parent / "store" / "seed_tasks"
COMPLETED = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    path = tmp_path / "seed-tasks"
    shutil.copytree(SEED_TASKS, path)
    return path


@pytest.fixture
def dr_config() -> dict[str, Any]:
    # The seed's tasks carry no request: nothing may try to resume them at start-up. They
    # finished long ago, so keep the expiry sweep from deleting them (as it rightly would).
    return {
        "pipeline": "dr_testing.pipelines:stepped",
        "auto_resume": False,
        "max_task_age_hours": 0,
    }


async def test_seed_tasks_are_listed_and_replayed(api: Any, storage_dir: Path) -> None:
    seed = json.loads((storage_dir / f"{COMPLETED}.json").read_text())
    listed = json.loads((await api("GET", "tasks")).body)["tasks"]
    ids = {task["task_id"] for task in listed}
    assert COMPLETED in ids
    info = json.loads((await api("GET", "tasks", COMPLETED)).body)
    assert info["status"] == "completed"
    assert info["result"]["report"] == "\n".join(seed["outputs"])
    events = parse_events((await api("GET", "tasks", COMPLETED, "events")).body)
    outputs = [data["text"] for _, kind, data in events if kind == "output"]
    assert outputs == seed["outputs"]
    assert [event_id for event_id, _, _ in events] == list(range(1, len(events) + 1))
    assert events[-1][1:] == ("status", {"status": "completed"})
    # A resumed client gets exactly the rest.
    tail = parse_events((await api("GET", "tasks", COMPLETED, "events", params={"after": 3})).body)
    assert tail == events[3:]


SEED_EXAMPLE = "abc123def456"  # the seed document's own example id: not 32 hex digits


async def test_every_listed_id_works_on_every_route(api: Any, storage_dir: Path) -> None:
    """Regression: `abc123def456.json` was listed, but GET, events and DELETE answered 400
    "Malformed task id": the task could be neither opened nor deleted."""
    # A file named outside the id rule is no task: it is not listed, so nothing listed fails.
    example = json.loads((storage_dir / f"{SEED_EXAMPLE}.json").read_text())
    for name in ("Upper", "a.b", "a b"):
        (storage_dir / f"{name}.json").write_text(json.dumps({**example, "taskId": name}))
    listed = {task["task_id"] for task in json.loads((await api("GET", "tasks")).body)["tasks"]}
    assert listed == {p.name[:-5] for p in SEED_TASKS.glob("*.json")}
    assert SEED_EXAMPLE in listed
    for task_id in sorted(listed):
        response = await api("GET", "tasks", task_id)
        assert response.code == 200, (task_id, response.body)
        assert json.loads(response.body)["task_id"] == task_id
        response = await api("GET", "tasks", task_id, "events", params={"follow": "false"})
        assert response.code == 200, (task_id, response.body)
        assert response.headers["X-Task-ID"] == task_id
        assert parse_events(response.body)
        response = await api("POST", "tasks", task_id, "cancel")
        assert response.code in (200, 409), (task_id, response.body)
        assert (await api("DELETE", "tasks", task_id)).code == 204
        assert (await api("GET", "tasks", task_id)).code == 404
    assert json.loads((await api("GET", "tasks")).body)["tasks"] == []
    assert sorted(p.name for p in storage_dir.glob("*.json")) == [
        "Upper.json",
        "a b.json",
        "a.b.json",
    ]
