"""A server stopped by SIGINT or SIGTERM pauses its runs and lets their leases go.

Regression: without a terminal, jupyter_server leaves SIGINT to Python, whose KeyboardInterrupt
ends the loop without stopping extensions. JupyterHub's spawner sends SIGINT first, so a user's
server stopped from the hub left its tasks `running` under a lease nobody renewed, and another
server or the worker could take them only once the lease lapsed.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from dr_testing.servers import ServerProcess
from dr_testing.waiting import wait_for
from jupyter_deepresearch.extension.store.files import FileTaskStore

pytestmark = pytest.mark.slow

SETTINGS = {"pipeline": "dr_testing.pipelines:stepped", "flush_interval": 0.05}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_pauses_running_tasks_and_releases_their_leases(
    tmp_path: Path, sig: signal.Signals
) -> None:
    storage = tmp_path / "tasks"
    server = ServerProcess(tmp_path / "srv", storage, settings=SETTINGS).start()
    try:
        with server.client() as client:
            task_id = client.post("tasks", json={"query": "signal units=50 delay=0.5"}).json()[
                "task_id"
            ]
            wait_for(client, task_id, "running")
        assert server.process is not None
        server.process.send_signal(sig)
        assert server.process.wait(30) == 0, server.log()
    finally:
        server.stop()

    snapshot = json.loads((storage / f"{task_id}.json").read_text())
    assert snapshot["progress"]["status"] == "paused"
    assert snapshot["pausedBy"] == "shutdown"
    assert asyncio.run(lease_holder(storage, task_id)) is None  # released, not left to lapse


async def lease_holder(storage: Path, task_id: str) -> str | None:
    store = FileTaskStore(storage)
    await store.open()
    try:
        return await store.lease_holder(task_id)
    finally:
        await store.close()
