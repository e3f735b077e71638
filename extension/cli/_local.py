"""Reading a store directly for `list` and `show`, read-only, without a server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from jupyter_deepresearch.extension.errors import StoreUnavailable
from jupyter_deepresearch.extension.models import Status, TaskInfo
from jupyter_deepresearch.extension.store.base import TaskState, TaskStore
from jupyter_deepresearch.extension.tasks.listing import ListQuery, TaskListing
from jupyter_deepresearch.kernel_helpers._errors import TaskNotFoundError
from jupyter_deepresearch.kernel_helpers._state import TaskSnapshot

from ._base import CommandError

_T = TypeVar("_T")
# Nobody reads a read-only store's log lines; damaged files are still reported on stderr.
LOG = logging.getLogger("jupyter_deepresearch.cli")


def open_store(storage_dir: str, redis_url: str) -> TaskStore:
    """The store `--storage-dir` or `--redis-url` names, opened read-only."""
    if storage_dir and redis_url:
        raise CommandError("give --storage-dir or --redis-url, not both")
    if redis_url:
        try:
            import redis  # noqa: F401 (the `redis` extra)

            from jupyter_deepresearch.extension.store.redis import RedisTaskStore
        except ImportError:
            raise CommandError(
                "--redis-url needs the redis client: pip install 'jupyter-deepresearch[redis]'"
            ) from None
        return RedisTaskStore(redis_url, log=LOG, read_only=True)
    from jupyter_deepresearch.extension.store.files import FileTaskStore

    return FileTaskStore(Path(storage_dir).expanduser(), log=LOG, read_only=True)


def run(store: TaskStore, work: Callable[[TaskStore], Awaitable[_T]]) -> _T:
    """Open the store, do `work` with it, close it."""

    async def session() -> _T:
        try:
            await store.open()
            return await work(store)
        except StoreUnavailable as exc:
            raise CommandError(exc.message) from None
        finally:
            await store.close()

    return asyncio.run(session())


async def list_tasks(
    store: TaskStore,
    status: str | None,
    limit: int | None,
    offset: int = 0,
    text: str | None = None,
) -> list[TaskInfo]:
    """Tasks newest first, as `GET tasks` lists them (summaries, every owner's)."""
    listing = TaskListing(store, store.peek_many, lambda owner, user: True)
    wanted = ListQuery(
        status=None if status is None else Status(status), limit=limit, offset=offset, text=text
    )
    page = await listing.page(wanted)
    return [TaskInfo.model_validate(info) for info in page.tasks]


async def load_task(store: TaskStore, task_id: str) -> TaskState:
    """The task with its outputs (the report so far)."""
    state = await store.load(task_id)
    if state is None:
        raise TaskNotFoundError(f"No task {task_id} in {store.location}", 404)
    return state


def snapshot_of(state: TaskState) -> TaskSnapshot:
    """What `show` renders: the state as a client sees it, with outputs and recent messages."""
    snapshot = TaskSnapshot.from_info(state.info())
    snapshot.outputs = list(state.outputs)
    snapshot.messages = list(state.messages)
    snapshot.reason = state.paused_by
    return snapshot
