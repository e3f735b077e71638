"""Fixtures: 2-3 real Jupyter servers sharing one storage folder, with short leases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dr_testing.cluster import start_all, stop_all
from dr_testing.servers import ServerProcess

LEASE_SECONDS = 2.0
SETTINGS = {
    "pipeline": "dr_testing.pipelines:stepped",
    "flush_interval": 0.05,
    "lease_seconds": LEASE_SECONDS,
}

Cluster = Callable[..., list[ServerProcess]]


@pytest.fixture
def shared_storage(tmp_path: Path) -> Path:
    path = tmp_path / "shared-tasks"
    path.mkdir()
    return path


@pytest.fixture
def cluster(tmp_path: Path, shared_storage: Path) -> Iterator[Cluster]:
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
                settings={**SETTINGS, **settings, **(each[i] if each else {})},
                name=f"s{len(started) + i}",
            )
            for i in range(count)
        ]
        started.extend(servers)
        return start_all(servers)

    yield make
    stop_all(started)
