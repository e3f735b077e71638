"""A Redis restart mid-task: clear 503s meanwhile, then the task carries on with nothing lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dr_testing.cluster import LEASE_SECONDS, SETTINGS, all_events
from dr_testing.redis_server import INSTALL_HINT, RedisProcess, redis_binary
from dr_testing.servers import ServerProcess
from dr_testing.waiting import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(redis_binary() is None, reason=INSTALL_HINT),
]


def test_redis_restart_mid_task_gives_503_then_the_task_completes(tmp_path: Path) -> None:
    data = tmp_path / "redis-data"
    redis = RedisProcess(data, appendonly=True).start()
    query = "through a redis restart units=10 delay=0.3"
    settings = {**SETTINGS, "store": "redis", "redis_url": redis.url}
    server = ServerProcess(tmp_path / "server", tmp_path / "unused", settings=settings)
    try:
        server.start()
        with server.client() as client:
            task_id = client.post("tasks", json={"query": query}).json()["task_id"]
            deadline = time.monotonic() + 30
            while client.get(f"tasks/{task_id}").json()["last_event_id"] < 5:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            seen = all_events(client, task_id)

            redis.stop()
            down = client.get("tasks")  # the listing needs Redis (the running task is in memory)
            assert down.status_code == 503, down.text
            assert "Redis" in down.json()["message"]
            assert client.get(f"tasks/{'0' * 32}").status_code == 503
            time.sleep(LEASE_SECONDS)  # the run meets the outage and stops

            redis = RedisProcess(data, port=redis.port, appendonly=True).start()
            done = wait_for(client, task_id, "completed", timeout=60)
            events = all_events(client, task_id)
    finally:
        server.stop()
        redis.stop()
    ids = [event_id for event_id, _, _ in events]
    assert ids == list(range(1, len(ids) + 1))
    by_id = {event_id: (kind, data) for event_id, kind, data in events}
    for event_id, kind, payload in seen:  # nothing Redis kept was lost or renumbered
        assert by_id[event_id] == (kind, payload)
    outputs = [data["text"] for _, kind, data in events if kind == "output"]
    assert outputs == [f"Unit {n} of {query!r} done." for n in range(10)]
    assert done["attempts"] >= 2
    assert "unavailable" in server.log()
