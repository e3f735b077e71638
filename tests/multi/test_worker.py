"""The headless worker finishes what a stopped server left queued; a new server serves it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from dr_testing.cluster import LEASE_SECONDS, SETTINGS
from dr_testing.servers import ServerProcess
from dr_testing.waiting import wait_for
from dr_testing.worker import WorkerProcess
from jupyter_deepresearch.extension.models import Status
from jupyter_deepresearch.extension.store.base import TaskStore
from jupyter_deepresearch.extension.store.files import FileTaskStore
from jupyter_deepresearch.extension.store.redis import RedisTaskStore

pytestmark = pytest.mark.slow


def statuses(storage: Path, backend: dict[str, Any], ids: list[str]) -> dict[str, Status]:
    async def read() -> dict[str, Status]:
        redis = bool(backend)
        store: TaskStore = RedisTaskStore(backend["redis_url"]) if redis else FileTaskStore(storage)
        found = {}
        try:
            for task_id in ids:
                state = await store.peek(task_id)
                assert state is not None
                found[task_id] = state.status
        finally:
            if redis:
                await store.close()
        return found

    return asyncio.run(read())


@pytest.mark.parametrize("backend", ["files", "redis"], indirect=True)
def test_worker_completes_tasks_a_stopped_server_left_queued(
    tmp_path: Path, shared_storage: Path, backend: dict[str, Any]
) -> None:
    settings = {**SETTINGS, **backend, "max_concurrent_tasks": 1}
    server = ServerProcess(tmp_path / "server", shared_storage, settings=settings).start()
    queries = [f"headless {i} units=5 delay=0.2" for i in range(3)]
    try:
        with server.client() as client:
            ids = [client.post("tasks", json={"query": q}).json()["task_id"] for q in queries]
            wait_for(client, ids[0], "running")
            assert client.get(f"tasks/{ids[2]}").json()["status"] == "queued"
    finally:
        assert server.stop() == 0, server.log()
    before = statuses(shared_storage, backend, ids)
    assert Status.completed not in before.values(), before

    worker = WorkerProcess(
        tmp_path / "worker",
        [
            f"--storage-dir={shared_storage}",
            "--max-concurrent=2",
            f"--lease-seconds={LEASE_SECONDS}",
            "--flush-interval=0.05",
            "--DeepResearchApp.pipeline=dr_testing.pipelines:stepped",
            *(f"--{k.replace('_', '-')}={v}" for k, v in backend.items()),
        ],
    ).start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert worker.process is not None and worker.process.poll() is None, worker.log()
            if set(statuses(shared_storage, backend, ids).values()) == {Status.completed}:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"worker did not finish: {worker.log()}")
    finally:
        assert worker.stop() == 0, worker.log()
    assert "Resuming task" in worker.log()

    fresh = ServerProcess(tmp_path / "fresh", shared_storage, settings=settings, name="fresh")
    fresh.start()
    try:
        with fresh.client() as client:
            for query, task_id in zip(queries, ids, strict=True):
                info = client.get(f"tasks/{task_id}").json()
                assert info["status"] == "completed"
                assert info["result"]["report"].count(f"of {query!r} done.") == 5
                again = client.post("tasks", json={"query": query})
                assert again.status_code == 200 and again.json()["status"] == "completed"
    finally:
        fresh.stop()
