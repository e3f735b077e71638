"""Fixtures: 2-3 real Jupyter servers sharing one storage folder, with short leases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dr_testing.cluster import SETTINGS, Cluster, start_all, stop_all
from dr_testing.servers import ServerProcess


@pytest.fixture
def shared_storage(tmp_path: Path) -> Path:
    path = tmp_path / "shared-tasks"
    path.mkdir()
    return path


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Store settings: `files` (the shared folder) unless a test parametrizes `redis`."""
    if getattr(request, "param", "files") == "files":
        return {}
    url = request.getfixturevalue("redis_url")
    return {"store": "redis", "redis_url": f"{url}?prefix=t{uuid.uuid4().hex[:8]}:"}


@pytest.fixture
def cluster(tmp_path: Path, shared_storage: Path, backend: dict[str, Any]) -> Iterator[Cluster]:
    """`cluster(3, max_concurrent_tasks=8)` -> servers started in parallel on the shared folder.

    `each=[{...}, ...]` gives per-server settings on top of the common ones.
    """
    started: list[ServerProcess] = []

    def make(
        count: int, *, each: list[dict[str, Any]] | None = None, **settings: Any
    ) -> list[ServerProcess]:
        servers = [
            ServerProcess(
                tmp_path / f"s{len(started) + i}",
                shared_storage,
                settings={**SETTINGS, **backend, **settings, **(each[i] if each else {})},
                name=f"s{len(started) + i}",
            )
            for i in range(count)
        ]
        started.extend(servers)
        return start_all(servers)

    yield make
    stop_all(started)
