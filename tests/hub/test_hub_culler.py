"""The idle culler on a real hub: a server with research in flight is not idle.

A task that runs without any client reports activity to the hub (through jupyter_server's
`last_activity_times`), so the culler leaves its server alone while an idle user's server is
culled. The hub hears of activity only every `JUPYTERHUB_ACTIVITY_INTERVAL` seconds (300 by
default); the test lowers it, as the README tells admins to (or to raise the culler's timeout).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dr_testing.hub import Hub
from dr_testing.waiting import wait_for

pytestmark = pytest.mark.slow

CULL_TIMEOUT = 15  # seconds of inactivity before the culler stops a server
CULL_EVERY = 2


@pytest.fixture
def culled_hub(hub_folder: Path) -> Iterator[Hub]:
    folder = hub_folder / "culler"
    settings = {
        "storage_dir": str(folder / "tasks"),
        "flush_interval": 0.05,
        "pipeline": "dr_testing.pipelines:stepped",
    }
    culler = {
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={CULL_TIMEOUT}",
            f"--cull-every={CULL_EVERY}",
        ],
    }
    role = {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
    hub = Hub(
        folder,
        server_settings=settings,
        services=[culler],
        roles=[role],
        server_env={"JUPYTERHUB_ACTIVITY_INTERVAL": "1"},
    )
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def test_the_culler_leaves_a_server_with_research_in_flight(culled_hub: Hub) -> None:
    hub = culled_hub
    hub.start_server("alice")  # her research starts at once: it is all the activity she has
    with hub.client("alice") as alice:
        task_id = alice.post("tasks", json={"query": "long units=300 delay=0.5"}).json()["task_id"]
        wait_for(alice, task_id, "running")
    hub.start_server("bob")
    # bob does nothing: his server is culled...
    deadline = time.monotonic() + 20 * CULL_TIMEOUT
    while hub.server_ready("bob"):
        assert time.monotonic() < deadline, "the culler never stopped the idle server"
        time.sleep(0.5)
    # ...and alice's, idle too but for her research, stays up well past the timeout.
    time.sleep(2 * (CULL_TIMEOUT + CULL_EVERY))
    assert hub.server_ready("alice"), hub.log()[-3000:]
    with hub.client("alice") as alice:
        assert alice.get(f"tasks/{task_id}").json()["status"] == "running"
        alice.post(f"tasks/{task_id}/cancel")
