"""`TaskListing`: summaries read once and used again; a server reads them ahead after start."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

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


def listing_server(folder: Path, tmp_path: Path, reads: list[str]) -> TaskManager:
    """A manager reading alice's summaries ahead, recording every task it reads for them."""
    manager = TaskManager(
        FileTaskStore(folder),
        pipelines.stepped,
        root_dir=tmp_path,
        cache_dir=tmp_path / "cache",
        warm_listing=True,
        warm_listing_for="alice",
        log=logging.getLogger("listing-test"),
    )
    real_read = manager.listing._read

    async def counting(task_ids: list[str]) -> dict[str, TaskState | None]:
        reads.extend(task_ids)
        return await real_read(task_ids)

    manager.listing._read = counting
    return manager


def test_a_server_reads_its_users_summaries_ahead_and_listings_reuse_them(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        await stored_tasks(tmp_path / "tasks")
        reads: list[str] = []
        manager = listing_server(tmp_path / "tasks", tmp_path, reads)
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


async def warmed(manager: TaskManager) -> list[dict[str, Any]]:
    await manager.ensure_started()
    assert manager._warming is not None
    await asyncio.wait_for(manager._warming, 60)
    return (await manager.list_tasks(ListQuery(user="alice"))).tasks


async def listed_by_a_new_server(
    folder: Path, tmp_path: Path
) -> tuple[list[dict[str, Any]], list[str]]:
    """A new server's listing of alice's tasks after its read-ahead, and the tasks it read."""
    reads: list[str] = []
    manager = listing_server(folder, tmp_path, reads)
    try:
        return await warmed(manager), reads
    finally:
        await manager.stop()


def test_the_next_server_starts_with_the_summaries_kept_and_reads_only_what_changed(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        folder = tmp_path / "tasks"
        ids = await stored_tasks(folder)
        listed, reads = await listed_by_a_new_server(folder, tmp_path)
        alices = [t["task_id"] for t in listed]
        assert sorted(reads) == sorted(alices)
        kept = list((folder / ".cache").glob("task-summaries-*"))
        assert len(kept) == 1

        # Between the two servers, one of alice's tasks is restarted and finishes again.
        changed = alices[3]
        store = FileTaskStore(folder)
        await store.open()
        state = await store.load(changed)
        assert state is not None
        await store.reset_run(state)
        await store.append(state, "status", {"status": "running"})
        await store.append(state, "status", {"status": "failed", "error": "boom"})
        await store.save(state, durable=True)
        await store.close()

        again, reads = await listed_by_a_new_server(folder, tmp_path)
        assert reads == [changed]  # every other summary came from the first server
        by_id = {t["task_id"]: t for t in again}
        assert by_id.keys() == set(alices) and len(again) == len(listed)
        assert by_id[changed]["status"] == "failed" and by_id[changed]["error"] == "boom"
        unchanged = [t for t in listed if t["task_id"] != changed]
        assert [t for t in again if t["task_id"] != changed] == unchanged
        assert set(ids) >= by_id.keys()

        # A damaged file of kept summaries is passed over: everything is read again, right.
        kept[0].write_bytes(b'{"version": 1, "fields": [], "summaries": [[1, 2')
        third, reads = await listed_by_a_new_server(folder, tmp_path)
        assert third == again and sorted(reads) == sorted(alices)

    asyncio.run(scenario())


def test_kept_summaries_that_are_not_a_tasks_own_are_not_served(tmp_path: Path) -> None:
    async def scenario() -> None:
        folder = tmp_path / "tasks"
        await stored_tasks(folder)
        listed, _ = await listed_by_a_new_server(folder, tmp_path)
        [kept] = (folder / ".cache").glob("task-summaries-*")
        doc = json.loads(kept.read_bytes())
        # Another task's summary under this task's id: the whole file is passed over.
        doc["summaries"][0][3] = doc["summaries"][1][3]
        kept.write_text(json.dumps(doc))
        again, reads = await listed_by_a_new_server(folder, tmp_path)
        assert again == listed and len(reads) == len(listed)

    asyncio.run(scenario())
