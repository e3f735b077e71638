"""Helpers for tests that drive a `TaskStore` directly.

Tests are plain functions that run one coroutine with `asyncio.run` (`@async_test`): that way
the store's background flusher and the test share one event loop whatever plugins are loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from jupyter_deepresearch.extension.store.base import TaskState, TaskStore
from jupyter_deepresearch.extension.store.files import FileTaskStore

StoreFactory = Callable[[], TaskStore]


def async_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body in a fresh event loop."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return run


@contextlib.asynccontextmanager
async def opened_store(make_store: StoreFactory) -> AsyncIterator[TaskStore]:
    """A store from the factory, opened, and closed (flushed) afterwards."""
    store = make_store()
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def new_state() -> TaskState:
    return TaskState(task_id=uuid.uuid4().hex, request={"query": "q"}, owner="alice")


class RenamedFileStore(FileTaskStore):
    """A third backend for the `store_class` setting's test: one module plus configuration."""

    kind = "renamed-files"
