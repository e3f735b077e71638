"""The periodic takeover pass: what it adopts, and what it says about what it cannot."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from dr_testing import pipelines
from jupyter_deepresearch.extension.tasks import TaskManager
from jupyter_deepresearch.extension.models import Status
from jupyter_deepresearch.extension.store.base import TaskState
from jupyter_deepresearch.extension.store.files import FileTaskStore


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
