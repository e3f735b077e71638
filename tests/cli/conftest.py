"""A real Jupyter server (subprocess) with the scripted pipeline, shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dr_testing.cli import cli_env, server_args
from dr_testing.servers import ServerProcess

SCRIPTED = "dr_testing.pipelines:stepped"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("cli-server")
    process = ServerProcess(base / "srv", base / "tasks", settings={"pipeline": SCRIPTED})
    yield process.start()
    process.stop()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment in which no server can be found without --url."""
    (tmp_path / "runtime").mkdir()
    return cli_env(tmp_path / "runtime")


@pytest.fixture
def at(server: ServerProcess) -> list[str]:
    """The options that point the command at `server`."""
    return server_args(server)
