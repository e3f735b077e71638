"""Corrupt-file matrix on a real server: each damage gets its repair, the rest keeps working.

One server records a set of completed tasks; their folder is copied, each task's files are
damaged in a different way, and a second server starts on the copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from dr_testing.servers import ServerProcess
from dr_testing.waiting import wait_for

pytestmark = pytest.mark.slow

SETTINGS = {"pipeline": "dr_testing.pipelines:stepped", "flush_interval": 0.05}


def snap(folder: Path, task_id: str) -> Path:
    return folder / f"{task_id}.json"


def log_of(folder: Path, task_id: str) -> Path:
    return folder / f"{task_id}.events.jsonl"


def truncate_snapshot(folder: Path, task_id: str) -> None:
    path = snap(folder, task_id)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def empty_snapshot(folder: Path, task_id: str) -> None:
    snap(folder, task_id).write_bytes(b"")


def binary_snapshot(folder: Path, task_id: str) -> None:
    snap(folder, task_id).write_bytes(bytes(range(256)) * 8 + os.urandom(512))


def wrong_schema_snapshot(folder: Path, task_id: str) -> None:
    doc = {"taskId": task_id, "progress": "half done", "outputs": 7, "lastSaved": None}
    snap(folder, task_id).write_text(json.dumps(doc))


def remove_log(folder: Path, task_id: str) -> None:
    log_of(folder, task_id).unlink()
    (folder / f"{task_id}.idx").unlink(missing_ok=True)


def torn_log(folder: Path, task_id: str) -> None:
    path = log_of(folder, task_id)
    raw = path.read_bytes()
    path.write_bytes(raw + raw.splitlines(keepends=True)[-2][:25])


# Damage -> whether the snapshot must be quarantined and rebuilt from the log.
DAMAGE: dict[str, tuple[Callable[[Path, str], None], bool]] = {
    "truncated": (truncate_snapshot, True),
    "empty": (empty_snapshot, True),
    "binary": (binary_snapshot, True),
    "wrong-schema": (wrong_schema_snapshot, True),
    "sidecar-missing": (remove_log, False),
    "torn-log-tail": (torn_log, False),
    "sidecar-longer": (lambda folder, task_id: None, False),  # prepared while the task ran
    "untouched": (lambda folder, task_id: None, False),
}


def served(client: httpx.Client, task_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    with connect_sse(client, "GET", f"tasks/{task_id}/events", params={"follow": "false"}) as src:
        assert src.response.status_code == 200
        return [(int(e.id), e.event, json.loads(e.data)) for e in src.iter_sse() if e.id]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Path]:
    """Completed tasks, one per kind of damage, and the early snapshot of `sidecar-longer`."""
    base = tmp_path_factory.mktemp("corrupt")
    storage = base / "tasks"
    server = ServerProcess(base / "rec", storage, settings=SETTINGS).start()
    infos: dict[str, Any] = {}
    early = base / "early-snapshot.json"
    try:
        with server.client() as client:
            for kind in DAMAGE:
                units = 8 if kind == "sidecar-longer" else 3
                delay = 0.15 if kind == "sidecar-longer" else 0.01
                query = f"corrupt {kind} units={units} delay={delay} outputs=2"
                task_id = client.post("tasks", json={"query": query}).json()["task_id"]
                if kind == "sidecar-longer":
                    wait_for(client, task_id, "running")
                    time.sleep(0.4)
                    shutil.copy(snap(storage, task_id), early)
                infos[kind] = wait_for(client, task_id, "completed")
                infos[kind]["events"] = served(client, task_id)
    finally:
        assert server.stop() == 0, server.log()
    return storage, infos, early


@pytest.fixture(scope="module")
def damaged(
    recorded: tuple[Path, dict[str, Any], Path], tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """A server started on a copy of the folder with every kind of damage applied."""
    storage, infos, early = recorded
    base = tmp_path_factory.mktemp("damaged")
    folder = base / "tasks"
    shutil.copytree(storage, folder)
    for kind, (damage, _) in DAMAGE.items():
        damage(folder, infos[kind]["task_id"])
    longer = infos["sidecar-longer"]
    shutil.copy(early, snap(folder, longer["task_id"]))
    early_doc = json.loads(early.read_text())
    assert early_doc["lastEventId"] < longer["last_event_id"]  # the log runs further
    server = ServerProcess(base / "srv", folder, settings=SETTINGS).start()
    try:
        with server.client() as client:
            yield server, client, folder, infos
    finally:
        server.stop()


@pytest.mark.parametrize(
    "kind",
    DAMAGE,
)
def test_damaged_task_is_repaired_and_served(damaged: Any, kind: str) -> None:
    server, client, folder, infos = damaged
    info = infos[kind]
    task_id = info["task_id"]
    _, rebuilt = DAMAGE[kind]

    listed = client.get("tasks")
    assert listed.status_code == 200
    assert task_id in [t["task_id"] for t in listed.json()["tasks"]]
    got = client.get(f"tasks/{task_id}")
    assert got.status_code == 200, got.text
    now = got.json()
    assert now["status"] == "completed"
    assert now["result"] == info["result"]
    events = served(client, task_id)
    ids = [event_id for event_id, _, _ in events]
    assert ids == list(range(ids[0], ids[0] + len(ids))), ids
    if kind == "sidecar-missing":
        # No log: the snapshot's outputs, result and status replay as the newest events.
        assert ids[-1] == info["last_event_id"]
        outputs = [d["text"] for _, k, d in events if k == "output"]
        assert outputs == [d["text"] for _, k, d in info["events"] if k == "output"]
    else:
        assert events == info["events"]
        assert now["last_event_id"] == info["last_event_id"]
    quarantined = [p.name for p in folder.iterdir() if ".corrupt-" in p.name]
    mine = [name for name in quarantined if name.startswith(f"{task_id}.json.corrupt-")]
    if rebuilt:
        assert len(mine) == 1, quarantined
        assert re.search(rf"Task {task_id}: {task_id}\.json is damaged", server.log())
        assert f"Task {task_id} rebuilt from its event log" in server.log()
        json.loads(snap(folder, task_id).read_bytes())  # rebuilt in place
    else:
        assert mine == []


def test_damage_never_causes_a_server_error(damaged: Any) -> None:
    server, client, _, infos = damaged
    for info in infos.values():
        client.get(f"tasks/{info['task_id']}")
    assert client.get("health").status_code == 200
    # New work is accepted beside the damaged tasks.
    created = client.post("tasks", json={"query": "after damage units=2"})
    assert created.status_code == 201
    wait_for(client, created.json()["task_id"], "completed")
    assert not re.search(r"\b500 (GET|POST|DELETE)\b", server.log()), server.log()
    assert "Traceback" not in server.log(), server.log()


def test_sidecar_longer_than_snapshot_does_not_rerun_the_task(damaged: Any) -> None:
    _, client, _, infos = damaged
    info = infos["sidecar-longer"]
    now = client.get(f"tasks/{info['task_id']}").json()
    assert now["attempts"] == info["attempts"]
