"""The upkeep loops run wherever a task manager runs: a server or the headless worker.

Regression: the expiry sweep and the retry of storage-paused tasks lived in the server's
extension app, so a worker-only deployment never expired tasks of a `files` store, and a task
a storage outage paused in a worker stayed paused until the worker restarted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets.config import Config

from dr_testing.disk import Disk
from dr_testing.pipelines import UNIT_CALLS
from dr_testing.stores import async_test
from dr_testing.waiting import eventually
from jupyter_deepresearch.extension.app import DeepResearchApp
from jupyter_deepresearch.extension.models import ResearchRequest, Status
from jupyter_deepresearch.extension.tasks import TaskManager, upkeep


def worker_manager(folder: Path, **settings: object) -> TaskManager:
    """The task manager `jupyter deepresearch worker` builds, from the same settings."""
    config = Config()
    config.DeepResearchApp.storage_dir = str(folder / "tasks")
    config.DeepResearchApp.cache_dir = str(folder / "cache")
    config.DeepResearchApp.pipeline = "dr_testing.pipelines:stepped"
    config.DeepResearchApp.flush_interval = 0.05
    for name, value in settings.items():
        setattr(config.DeepResearchApp, name, value)
    return DeepResearchApp(config=config).build_manager(folder, worker=True)


@pytest.fixture
def quick_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upkeep, "FIRST_SWEEP_DELAY_SECONDS", 0.1)
    monkeypatch.setattr(upkeep, "MAINTENANCE_SECONDS", 0.1)
    monkeypatch.setattr(upkeep, "MIN_SWEEP_SECONDS", 0.1)


@async_test
async def test_the_worker_expires_old_finished_tasks(tmp_path: Path, quick_loops: None) -> None:
    manager = worker_manager(tmp_path, max_task_age_hours=1 / 3600)  # kept for one second
    await manager.ensure_started()
    try:
        state, _ = await manager.submit(ResearchRequest(query="old units=1"), None)
        await eventually(lambda: _status_is(manager, state.task_id, Status.completed))
        # No call from the test: the worker's own loop sweeps it once it is a second old.
        await eventually(lambda: _gone(manager, state.task_id))
    finally:
        await manager.stop()


@async_test
async def test_the_worker_resumes_a_task_a_storage_outage_paused(
    tmp_path: Path, quick_loops: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = Disk(monkeypatch)
    query = "outage units=6 delay=0.1"
    manager = worker_manager(tmp_path)
    await manager.ensure_started()
    try:
        state, _ = await manager.submit(ResearchRequest(query=query), None)

        async def two_units() -> bool:
            return UNIT_CALLS[f"{query}|1"] >= 1

        await eventually(two_units)
        disk.failing = True
        await eventually(lambda: _paused_by_storage(manager, state.task_id))
        disk.failing = False
        # No call from the test: the worker's own loop finds the disk back and resumes it.
        await eventually(lambda: _status_is(manager, state.task_id, Status.completed))
    finally:
        await manager.stop()


async def _status_is(manager: TaskManager, task_id: str, status: Status) -> bool:
    return (await manager.get(task_id)).status is status


async def _paused_by_storage(manager: TaskManager, task_id: str) -> bool:
    state = await manager.get(task_id)
    return state.status is Status.paused and state.paused_by == "storage"


async def _gone(manager: TaskManager, task_id: str) -> bool:
    return await manager.store.peek(task_id) is None
