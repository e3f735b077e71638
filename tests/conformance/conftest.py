"""One store contract, two backends: every test here runs against `files` and `redis`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from jupyter_deepresearch.extension.store.base import TaskStore


@pytest.fixture(params=["files", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], TaskStore]:
    """`make_store()` -> a new, unopened store instance on this test's shared backing."""
    if request.param == "files":
        from jupyter_deepresearch.extension.store.files import FileTaskStore

        folder = tmp_path / "tasks"
        return lambda: FileTaskStore(folder, flush_interval=0.05)
    url = request.getfixturevalue("redis_url")
    from jupyter_deepresearch.extension.store.redis import RedisTaskStore

    prefix = f"t{uuid.uuid4().hex[:8]}:"  # each test its own key space
    return lambda: RedisTaskStore(f"{url}?prefix={prefix}", flush_interval=0.05)
