"""Two users on a real JupyterHub sharing one tasks folder, with the worker as a hub service.

Each test stops and starts users' servers through the hub's REST API, as "Stop My Server" and
the idle culler do, and reads the shared folder directly to see what happened while a user's
server was down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dr_testing.hub import Hub, bin_path
from dr_testing.servers import TESTS_DIR
from dr_testing.waiting import wait_for
from jupyter_deepresearch.extension.store.base import TaskState
from jupyter_deepresearch.extension.store.files import FileTaskStore

pytestmark = pytest.mark.slow

LEASE_SECONDS = 3.0
SLOW = "units=60 delay=0.5"  # about 30 s: long enough to stop a server in the middle


def peek(storage: Path, task_id: str) -> TaskState:
    async def read() -> TaskState:
        state = await FileTaskStore(storage).peek(task_id)
        assert state is not None, task_id
        return state

    return asyncio.run(read())


def status_events(storage: Path, task_id: str) -> list[tuple[str, str | None]]:
    """(status, reason) of each status event of the task, in order."""

    async def read() -> list[tuple[str, str | None]]:
        events = [event async for event in FileTaskStore(storage).events(task_id, 0)]
        return [(e.data["status"], e.data.get("reason")) for e in events if e.type == "status"]

    return asyncio.run(read())


def eventually(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout}s")


@pytest.fixture
def make_hub(hub_folder: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Hub]]:
    hubs: list[Hub] = []

    def make(*, worker: bool) -> Hub:
        folder = hub_folder / request.node.name
        storage = folder / "tasks"
        settings = {
            "storage_dir": str(storage),
            "fingerprint_scope": "user",
            "lease_seconds": LEASE_SECONDS,
            "flush_interval": 0.05,
            "pipeline": "dr_testing.pipelines:stepped",
        }
        services = []
        if worker:
            services.append(
                {
                    "name": "deepresearch-worker",
                    "command": [
                        bin_path("jupyter-deepresearch"),
                        "worker",
                        f"--storage-dir={storage}",
                        f"--lease-seconds={LEASE_SECONDS}",
                        "--pipeline=dr_testing.pipelines:stepped",
                        "--flush-interval=0.05",
                    ],
                    "environment": {
                        "PYTHONPATH": str(TESTS_DIR),
                        "JUPYTER_CONFIG_DIR": str(folder / "worker-config"),
                    },
                }
            )
        hub = Hub(folder, server_settings=settings, services=services)
        hubs.append(hub)
        hub.start()
        for user in hub.users:
            hub.start_server(user)
        return hub

    yield make
    for hub in hubs:
        hub.stop()


def test_a_users_task_never_runs_in_another_users_server(make_hub: Callable[..., Hub]) -> None:
    """Regression: bob's server took over alice's task while her server was stopped and ran it
    with bob's files (her report quoted his notes)."""
    hub = make_hub(worker=False)
    for user, text in (("alice", "Alice's notes."), ("bob", "The payroll password is hunter2.")):
        (hub.home(user) / "notes").mkdir()
        (hub.home(user) / "notes" / "plan.md").write_text(f"# Plan\n\n{text}\n")
    storage = hub.folder / "tasks"
    body = {"query": f"What is the retry budget? {SLOW}", "search": {"sources": ["notes"]}}
    with hub.client("alice") as alice:
        task_id = alice.post("tasks", json=body).json()["task_id"]
        wait_for(alice, task_id, "running")

    hub.stop_server("alice")
    assert peek(storage, task_id).status.value == "paused"
    time.sleep(3 * LEASE_SECONDS)  # several takeover rounds of bob's server
    state = peek(storage, task_id)
    assert (state.status.value, state.paused_by, state.attempts) == ("paused", "shutdown", 1)
    assert f"Resuming task {task_id}" not in hub.log()  # bob's server never took it

    hub.start_server("alice")  # her server resumes her task, with her files
    with hub.client("alice") as alice:
        done = wait_for(alice, task_id, "completed", timeout=120)
    assert done["attempts"] == 2


def test_the_worker_takes_over_a_stopped_users_task_and_leaves_source_tasks_to_them(
    make_hub: Callable[..., Hub],
) -> None:
    """Regressions: a server stopped through the hub (SIGINT) kept its tasks `running` under a
    lease nobody renewed; the worker failed tasks that read `search.sources` (it resolved the
    folder against its own directory) and they stayed failed."""
    hub = make_hub(worker=True)
    (hub.home("alice") / "notes").mkdir()
    (hub.home("alice") / "notes" / "a.md").write_text("# A\n\nThe retry budget is 3.\n")
    storage = hub.folder / "tasks"
    with hub.client("alice") as alice:
        plain = alice.post("tasks", json={"query": f"plain {SLOW}"}).json()["task_id"]
        body = {"query": f"retry budget {SLOW}", "search": {"sources": ["notes"]}}
        sourced = alice.post("tasks", json=body).json()["task_id"]
        wait_for(alice, plain, "running")
        wait_for(alice, sourced, "running")

    stopped = time.monotonic()
    hub.stop_server("alice")
    # Paused and let go by her server as it stopped, so the worker need not wait for a lapse.
    for task_id in (plain, sourced):
        assert status_events(storage, task_id)[:3] == [
            ("queued", None),
            ("running", None),
            ("paused", "shutdown"),
        ], task_id

    eventually(lambda: peek(storage, plain).attempts == 2, 120, "the worker's takeover")
    # A figure, not an assertion (shared machines): passes come every 2 s, not a lease's third.
    print(f"the worker resumed the task {time.monotonic() - stopped:.1f} s after asking the hub")
    eventually(lambda: peek(storage, plain).status.value == "completed", 120, "the worker")
    left = eventually(
        lambda: (state := peek(storage, sourced)).paused_by == "owner" and state, 60, "left"
    )
    assert left.status.value == "paused"
    assert "alice's server" in left.message and "search.sources" in left.message
    assert f"files store at {storage}" in hub.log()  # the worker says where it works

    hub.start_server("alice")
    with hub.client("alice") as alice:
        done = wait_for(alice, sourced, "completed", timeout=120)
    assert done["attempts"] == 2
    assert peek(storage, plain).attempts == 2  # one run by her server, one by the worker


def test_health_shows_a_user_only_their_own_tasks(make_hub: Callable[..., Hub]) -> None:
    hub = make_hub(worker=False)
    with hub.client("alice") as alice, hub.client("bob") as bob:
        for i in range(3):
            wait_for(
                alice, alice.post("tasks", json={"query": f"a{i}"}).json()["task_id"], "completed"
            )
        wait_for(bob, bob.post("tasks", json={"query": "b0"}).json()["task_id"], "completed")
        seen = {
            user: client.get("health").json() for user, client in (("alice", alice), ("bob", bob))
        }
    assert seen["alice"]["tasks"]["completed"] == 3
    assert seen["bob"]["tasks"]["completed"] == 1
    for health in seen.values():
        assert str(hub.folder) not in str(health)  # where the tasks live is the admin's business
