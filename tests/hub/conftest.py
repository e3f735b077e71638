"""Fixtures for tests against a real JupyterHub (see `dr_testing.hub`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dr_testing.hub import Hub, hub_missing

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    why = hub_missing()
    if why:
        pytest.skip(why)
    return tmp_path_factory.mktemp("hub")


@pytest.fixture(scope="module")
def shared_hub(hub_folder: Path) -> Iterator[Hub]:
    """alice and bob on one hub, one shared tasks folder, tasks scoped per user."""
    settings = {
        "storage_dir": str(hub_folder / "tasks"),
        "fingerprint_scope": "user",
        "lease_seconds": 3,
        "flush_interval": 0.05,
        "pipeline": "dr_testing.pipelines:stepped",
    }
    hub = Hub(hub_folder, server_settings=settings).start()
    try:
        for user in hub.users:
            hub.start_server(user)
        yield hub
    finally:
        hub.stop()
