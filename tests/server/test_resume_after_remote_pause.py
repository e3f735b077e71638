"""Resuming a task that another server paused a moment ago, before it let the task go.

Regression (seen under load in tests/multi): server B asked A to pause a task and then resumed
it; A had written `paused` but not yet released its lease, so B's resume found the lease taken,
took the task for "resumed by another server" and answered 200 with the task still paused.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from dr_testing import pipelines
from jupyter_deepresearch.extension.tasks import TaskManager
from jupyter_deepresearch.extension.models import ResearchRequest, Status
from jupyter_deepresearch.extension.store.files import FileTaskStore


def manager_on(folder: Path, name: str) -> TaskManager:
    return TaskManager(
        FileTaskStore(folder / "tasks"),
        pipelines.stepped,
        root_dir=folder,
        cache_dir=folder / "cache",
        lease_seconds=30,
        log=logging.getLogger(f"resume-race-{name}"),
    )


def test_a_resume_waits_for_the_server_that_paused_the_task_to_let_it_go(tmp_path: Path) -> None:
    query = "resume race units=40 delay=0.2"

    async def scenario() -> Status:
        a, b = manager_on(tmp_path, "a"), manager_on(tmp_path, "b")
        await a.ensure_started()
        await b.ensure_started()
        try:
            pipelines.STARTED[query] = asyncio.Event()
            state, created = await a.submit(ResearchRequest(query=query), None)
            assert created
            await asyncio.wait_for(pipelines.STARTED[query].wait(), 30)

            # A lets go of the task only when told: the moment B's resume arrived in.
            let_go = asyncio.Event()
            release = a.runner.let_go

            async def late_let_go(task_id: str) -> None:
                await let_go.wait()
                await release(task_id)

            a.runner.let_go = late_let_go  # type: ignore[method-assign]
            paused = await b.pause(state.task_id)
            assert paused.status is Status.paused
            resuming = asyncio.create_task(b.resume(state.task_id))
            await asyncio.wait([resuming], timeout=1.0)
            let_go.set()
            resumed = await asyncio.wait_for(resuming, 30)
            assert state.task_id in b.leases.held
            return resumed.status
        finally:
            pipelines.STARTED.pop(query, None)
            await a.stop()
            await b.stop()

    assert asyncio.run(scenario()) in (Status.queued, Status.running)
