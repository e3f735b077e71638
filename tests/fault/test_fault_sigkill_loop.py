"""SIGKILL loop: one long task, a real server killed at random moments and restarted each time.

After every restart on the same storage folder: every file parses, the served event ids are
1..N with no gap or duplicate, and every event served before a crash is the same event after
it. At the end the report equals that of an uninterrupted run.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from dr_testing.servers import ServerProcess
from dr_testing.waiting import wait_for

pytestmark = pytest.mark.slow

SETTINGS = {"pipeline": "dr_testing.pipelines:stepped", "flush_interval": 0.05}
QUERY = "sigkill-loop units=150 delay=0.04 outputs=3"
KILLS = 30
SEED = 20240611


def served_events(client: httpx.Client, task_id: str) -> list[tuple[int, str, str]]:
    with connect_sse(client, "GET", f"tasks/{task_id}/events", params={"follow": "false"}) as src:
        return [(int(e.id), e.event, e.data) for e in src.iter_sse() if e.id]


def check_files_parse(storage: Path) -> None:
    """Snapshots are whole JSON documents; every log line is a JSON record ending in a newline."""
    for path in storage.iterdir():
        if path.name.endswith(".json"):
            json.loads(path.read_bytes())
        elif path.name.endswith(".events.jsonl"):
            raw = path.read_bytes()
            assert raw.endswith(b"\n"), f"{path.name} ends in a torn line"
            for line in raw.splitlines():
                json.loads(line)
        assert ".corrupt-" not in path.name, f"a clean kill left a damaged file: {path.name}"


def check_events(events: list[tuple[int, str, str]], seen: dict[int, tuple[str, str]]) -> None:
    ids = [event_id for event_id, _, _ in events]
    assert ids == list(range(1, len(ids) + 1)), ids
    for event_id, kind, data in events:
        if event_id in seen:
            assert seen[event_id] == (kind, data), f"event {event_id} changed across a crash"
        seen[event_id] = (kind, data)


def test_thirty_sigkills_at_random_moments_lose_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    reference = ServerProcess(tmp_path / "ref", tmp_path / "ref-tasks", settings=SETTINGS)
    reference.start()
    try:
        with reference.client() as client:
            ref_id = client.post("tasks", json={"query": QUERY}).json()["task_id"]
            expected = wait_for(client, ref_id, "completed", timeout=120)
    finally:
        reference.stop()

    storage = tmp_path / "tasks"
    seen: dict[int, tuple[str, str]] = {}
    kills = 0
    task_id = ""
    progress: list[int] = []
    for round_ in range(KILLS + 1):
        server = ServerProcess(tmp_path / "work", storage, settings=SETTINGS, name=f"s{round_}")
        server.start()
        try:
            with server.client() as client:
                if round_ == 0:
                    task_id = client.post("tasks", json={"query": QUERY}).json()["task_id"]
                    assert task_id == ref_id
                else:
                    check_files_parse(storage)
                info = client.get(f"tasks/{task_id}").json()
                if info["status"] != "completed":
                    # The task resumed by itself (auto_resume); let it record something new.
                    before = info["last_event_id"]
                    deadline = time.monotonic() + 20
                    while info["last_event_id"] <= before and info["status"] != "completed":
                        assert time.monotonic() < deadline, f"no progress after restart: {info}"
                        time.sleep(0.02)
                        info = client.get(f"tasks/{task_id}").json()
                check_events(served_events(client, task_id), seen)
                progress.append(info["last_event_id"])
                if round_ == KILLS:
                    done = wait_for(client, task_id, "completed", timeout=120)
                    final_events = served_events(client, task_id)
                    check_events(final_events, seen)
                    break
                time.sleep(rng.uniform(0.0, 0.35))
        except BaseException:
            server.kill()
            raise
        server.kill()
        kills += 1
    assert server.stop() == 0, server.log()
    check_files_parse(storage)

    assert kills == KILLS
    assert progress[-1] > progress[0], progress
    assert done["result"] == expected["result"]
    assert done["attempts"] >= 2
    outputs = [json.loads(data)["text"] for _, kind, data in final_events if kind == "output"]
    # Every unit's final line is there; a unit in flight at a kill may repeat, never vanish.
    for unit in range(150):
        assert f"Unit {unit} of {QUERY!r} done." in outputs
