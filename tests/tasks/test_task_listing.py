"""`TaskListing`: summaries read once and used again; a server reads them ahead after start."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from dr_testing import pipelines
from jupyter_deepresearch.extension.models import Status
from jupyter_deepresearch.extension.store.base import TaskState
from jupyter_deepresearch.extension.store.files import FileTaskStore
from jupyter_deepresearch.extension.tasks import TaskManager
from jupyter_deepresearch.extension.tasks.listing import ListQuery

TASKS = 30


async def stored_tasks(folder: Path) -> list[str]:
    """Completed tasks of two owners, written by a store of their own."""
    store = FileTaskStore(folder)
    await store.open()
    ids = []
    for n in range(TASKS):
        state = TaskState(
            task_id=f"{n + 1:032x}",
            request={"query": f"question {n} {'even' if n % 2 == 0 else 'odd'}"},
            owner="alice" if n % 3 else "bob",
        )
        assert await store.create(state)
        await store.append(state, "status", {"status": "running"})
        await store.append(state, "result", {"report": f"# Report {n}", "sources": []})
        await store.append(state, "status", {"status": "completed"})
        await store.save(state, durable=True)
        ids.append(state.task_id)
    await store.close()
    return ids


def test_a_server_reads_its_users_summaries_ahead_and_listings_reuse_them(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        await stored_tasks(tmp_path / "tasks")
        manager = TaskManager(
            FileTaskStore(tmp_path / "tasks"),
            pipelines.stepped,
            root_dir=tmp_path,
            cache_dir=tmp_path / "cache",
            warm_listing=True,
            warm_listing_for="alice",
            log=logging.getLogger("listing-test"),
        )
        reads: list[str] = []
        real_read = manager.listing._read

        async def counting(task_id: str) -> TaskState | None:
            reads.append(task_id)
            return await real_read(task_id)

        manager.listing._read = counting
        await manager.ensure_started()
        try:
            assert manager._warming is not None
            await asyncio.wait_for(manager._warming, 60)
            alices = sum(1 for n in range(TASKS) if n % 3)
            assert len(reads) == alices  # hers only: bob's server reads his
            reads.clear()
            everything = await manager.list_tasks(ListQuery(user="alice"))
            assert everything.total == alices and len(everything.tasks) == alices
            odd = await manager.list_tasks(ListQuery(user="alice", text="ODD", limit=5))
            assert odd.total == sum(1 for n in range(TASKS) if n % 3 and n % 2)
            assert all("odd" in t["request"]["query"] for t in odd.tasks)
            assert all("result" not in t for t in everything.tasks)
            assert reads == []  # every summary came from the read-ahead
            # A task that changes is read again, and only it.
            task_id = everything.tasks[0]["task_id"]
            state = await manager.store.load(task_id)
            assert state is not None
            await manager.store.append(state, "status", {"status": "cancelled"})
            await manager.store.save(state, durable=True)
            again = await manager.list_tasks(ListQuery(user="alice", status=Status.cancelled))
            assert [t["task_id"] for t in again.tasks] == [task_id]
            assert reads == [task_id]
        finally:
            await manager.stop()

    asyncio.run(scenario())
