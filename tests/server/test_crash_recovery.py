"""A real server killed with SIGKILL mid-task, restarted on the same storage, resumes the task."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from dr_testing.servers import ServerProcess
from dr_testing.waiting import wait_for

pytestmark = pytest.mark.slow

SETTINGS = {"pipeline": "dr_testing.pipelines:stepped", "flush_interval": 0.05}


def all_events(client: httpx.Client, task_id: str) -> list[tuple[int, str, str]]:
    with connect_sse(client, "GET", f"tasks/{task_id}/events", params={"follow": "false"}) as src:
        return [(int(e.id), e.event, e.data) for e in src.iter_sse() if e.id]


def assert_files_parse(storage: Path) -> None:
    files = [p for p in storage.iterdir() if p.is_file()]
    assert files
    for path in files:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            for line in path.read_text().splitlines():
                json.loads(line)


def test_sigkill_mid_task_then_restart_resumes_from_checkpoint(tmp_path: Path) -> None:
    storage = tmp_path / "tasks"
    query = "crash units=8 delay=0.3"
    reference = ServerProcess(tmp_path / "ref", tmp_path / "ref-tasks", settings=SETTINGS).start()
    try:
        with reference.client() as client:
            ref_id = client.post("tasks", json={"query": query}).json()["task_id"]
            expected = wait_for(client, ref_id, "completed")
    finally:
        reference.stop()

    first = ServerProcess(tmp_path / "a", storage, settings=SETTINGS, name="a").start()
    seen: list[tuple[int, str, str]] = []
    try:
        with first.client() as client:
            task_id = client.post("tasks", json={"query": query}).json()["task_id"]
            assert task_id == ref_id
            with connect_sse(client, "GET", f"tasks/{task_id}/events") as source:
                outputs = 0
                for sse in source.iter_sse():
                    if sse.id:
                        seen.append((int(sse.id), sse.event, sse.data))
                    outputs += sse.event == "output"
                    if outputs == 3 and sse.event == "progress":
                        break
    finally:
        first.kill()

    second = ServerProcess(tmp_path / "b", storage, settings=SETTINGS, name="b").start()
    try:
        with second.client() as client:
            done = wait_for(client, task_id, "completed")
            events = all_events(client, task_id)
    finally:
        assert second.stop() == 0, second.log()
    assert_files_parse(storage)
    assert done["result"] == expected["result"]
    assert done["attempts"] == 2
    ids = [event_id for event_id, _, _ in events]
    assert ids == list(range(1, len(ids) + 1))
    # Every event a client saw before the crash is the same event after it.
    by_id = {event_id: event for event_id, *event in events}
    for event_id, kind, data in seen:
        assert by_id[event_id] == [kind, data]
    texts = [json.loads(data)["text"] for _, kind, data in events if kind == "output"]
    assert texts == [f"Unit {n} of {query!r} done." for n in range(8)]
    assert "Resuming task" in second.log()


def test_sigterm_pauses_running_task_and_restart_resumes_it(tmp_path: Path) -> None:
    storage = tmp_path / "tasks"
    query = "term units=6 delay=0.3"
    first = ServerProcess(tmp_path / "a", storage, settings=SETTINGS, name="a").start()
    with first.client() as client:
        task_id = client.post("tasks", json={"query": query}).json()["task_id"]
        wait_for(client, task_id, "running")
        time.sleep(0.5)
    assert first.stop() == 0, first.log()
    snapshot = json.loads((storage / f"{task_id}.json").read_text())
    assert snapshot["progress"]["status"] == "paused"

    second = ServerProcess(tmp_path / "b", storage, settings=SETTINGS, name="b").start()
    try:
        with second.client() as client:
            done = wait_for(client, task_id, "completed")
            ids = [event_id for event_id, _, _ in all_events(client, task_id)]
    finally:
        second.stop()
    assert done["attempts"] == 2
    assert ids == list(range(1, len(ids) + 1))


def test_auto_resume_off_leaves_interrupted_task_paused(tmp_path: Path) -> None:
    storage = tmp_path / "tasks"
    first = ServerProcess(tmp_path / "a", storage, settings=SETTINGS, name="a").start()
    try:
        with first.client() as client:
            task_id = client.post("tasks", json={"query": "manual units=6 delay=0.3"}).json()[
                "task_id"
            ]
            # Streamed events are durable ones: once an output arrives, the run is on disk.
            with connect_sse(client, "GET", f"tasks/{task_id}/events") as source:
                next(sse for sse in source.iter_sse() if sse.event == "output")
    finally:
        first.kill()
    second = ServerProcess(
        tmp_path / "b", storage, settings={**SETTINGS, "auto_resume": False}, name="b"
    ).start()
    try:
        with second.client() as client:
            info = wait_for(client, task_id, "paused", timeout=10)
            assert info["attempts"] == 1
            resumed = client.post(f"tasks/{task_id}/resume").json()
            assert resumed["status"] in ("queued", "running")
            assert wait_for(client, task_id, "completed")["attempts"] == 2
    finally:
        second.stop()
