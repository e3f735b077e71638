"""`Takeover`: what the periodic pass adopts and says, and resuming a task another server held."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from dr_testing import pipelines
from jupyter_deepresearch.extension.models import ResearchRequest, Status
from jupyter_deepresearch.extension.store.base import Event, TaskState
from jupyter_deepresearch.extension.store.files import FileTaskStore
from jupyter_deepresearch.extension.tasks import TaskManager


def test_a_stored_request_that_no_longer_validates_is_reported_once_not_every_pass(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> list[str]:
        seeded = FileTaskStore(tmp_path / "tasks")
        await seeded.open()
        # Written by an older version, say, with a field this one no longer knows.
        broken = TaskState(task_id="a" * 32, request={"query": "q", "colour": "blue"})
        assert await seeded.create(broken)
        await seeded.close()

        manager = TaskManager(
            FileTaskStore(tmp_path / "tasks"),
            pipelines.stepped,
            root_dir=tmp_path,
            cache_dir=tmp_path / "cache",
            log=logging.getLogger("takeover-test"),
        )
        await manager.ensure_started()
        try:
            for _ in range(3):
                await manager.take_over()
            state = await manager.store.peek(broken.task_id)
            assert state is not None and state.status is Status.queued  # left for others
            assert await manager.store.lease_holder(broken.task_id) is None
        finally:
            await manager.stop()
        return [r.getMessage() for r in caplog.records if "Cannot resume" in r.getMessage()]

    with caplog.at_level(logging.ERROR, logger="takeover-test"):
        said = asyncio.run(scenario())
    assert len(said) == 1, said
    assert "colour" in said[0]


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
    """Regression (seen under load in tests/multi): server B asked A to pause a task and then
    resumed it; A had written `paused` but not yet released its lease, so B's resume took the
    task for "resumed by another server" and answered 200 with the task still paused."""
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


def test_a_creator_that_loses_the_new_tasks_lease_before_queueing_still_answers_created(
    tmp_path: Path,
) -> None:
    # Found by the 1,000-iteration chaos run: a server frozen (SIGSTOP) past a new task's
    # lease between creating and queueing it answered the POST with 409 "is now run by another
    # server", although the task was created (and run by the server that took it over).
    from jupyter_deepresearch.extension.errors import LeaseLost

    async def scenario() -> None:
        manager = manager_on(tmp_path, "creator")
        await manager.ensure_started()
        real_append = manager.store.append
        lost: list[str] = []

        async def append_after_a_takeover(
            state: TaskState, type: str, data: dict[str, Any]
        ) -> Event:
            if not lost:
                lost.append(state.task_id)
                raise LeaseLost(state.task_id)  # what the fenced write finds after the freeze
            return await real_append(state, type, data)

        manager.store.append = append_after_a_takeover  # type: ignore[method-assign]
        try:
            state, created = await manager.submit(ResearchRequest(query="frozen creator"), "ann")
            assert created
            assert state.task_id == lost[0]
            assert state.task_id not in manager.runner.live  # left to whoever took it
            assert state.task_id not in manager.leases.held
            assert await manager.store.peek(state.task_id) is not None
        finally:
            await manager.stop()

    asyncio.run(scenario())


def test_a_resume_frozen_past_its_wait_still_takes_the_lease_that_lapsed_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the 1,000-iteration chaos run on Redis: a POST of a paused task whose lease
    # another server held asked that server to let go; this server was then frozen (SIGSTOP)
    # past its wait, during which the holder's lease lapsed, and on waking it answered 409
    # "did not let it go" without trying the lease once more.
    from jupyter_deepresearch.extension.tasks import takeover as takeover_module

    monkeypatch.setattr(takeover_module, "CONTROL_WAIT_SECONDS", 0.3)
    query = "frozen resumer units=40 delay=0.2"

    async def scenario() -> Status:
        holder = TaskManager(
            FileTaskStore(tmp_path / "tasks"),
            pipelines.stepped,
            root_dir=tmp_path,
            cache_dir=tmp_path / "cache",
            lease_seconds=1.0,
            log=logging.getLogger("frozen-resumer-holder"),
        )
        resumer = manager_on(tmp_path, "resumer")
        await holder.ensure_started()
        await resumer.ensure_started()
        try:
            pipelines.STARTED[query] = asyncio.Event()
            state, _ = await holder.submit(ResearchRequest(query=query), None)
            await asyncio.wait_for(pipelines.STARTED[query].wait(), 30)
            assert (await holder.pause(state.task_id)).status is Status.paused
            # The holder keeps the paused task's lease and then stops answering (frozen): no
            # renewal, no control requests taken. Its lease lapses a second later.
            assert await holder.leases.acquire(state.task_id)
            await holder.upkeep.stop()

            ask = resumer.store.request_control

            async def ask_then_freeze(task_id: str, action: str) -> None:
                await ask(task_id, action)
                await asyncio.sleep(1.5)  # past the wait, and past the holder's lease

            resumer.store.request_control = ask_then_freeze  # type: ignore[method-assign]
            resumed = await resumer.resume(state.task_id)
            assert state.task_id in resumer.leases.held
            return resumed.status
        finally:
            pipelines.STARTED.pop(query, None)
            await holder.stop()
            await resumer.stop()

    assert asyncio.run(scenario()) in (Status.queued, Status.running)
