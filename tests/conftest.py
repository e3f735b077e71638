"""Shared fixtures: a real Jupyter server with the extension (pytest-jupyter), a real Redis,
storage folders."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dr_testing.redis_server import INSTALL_HINT, RedisProcess, redis_binary

pytest_plugins = ["pytest_jupyter.jupyter_server"]

EXTENSION = "jupyter_deepresearch.extension"
SCRIPTED = "dr_testing.pipelines:stepped"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the session (each test uses its own key prefix), stopped at
    teardown; without one, the tests that need it skip saying how to get it."""
    if redis_binary() is None:
        pytest.skip(INSTALL_HINT)
    server = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def search_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One search-index cache for the whole session: building it is the slow part."""
    return tmp_path_factory.mktemp("search-cache")


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    path = tmp_path / "tasks"
    path.mkdir()
    return path


@pytest.fixture
def dr_config() -> dict[str, Any]:
    """Per-test overrides of `DeepResearchApp` traits (tests replace or update it)."""
    return {"pipeline": SCRIPTED}


@pytest.fixture
def jp_server_config(dr_config: dict[str, Any], storage_dir: Path, search_cache_dir: Path) -> Any:
    return {
        "ServerApp": {"jpserver_extensions": {EXTENSION: True}},
        "DeepResearchApp": {
            "storage_dir": str(storage_dir),
            "cache_dir": str(search_cache_dir),
            "flush_interval": 0.05,
            **dr_config,
        },
    }


@pytest.fixture
def dr_app(jp_serverapp: Any, jp_asyncio_loop: Any) -> Any:
    """The running extension app, started as a real server starts it (after it listens)."""
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    return jp_serverapp.extension_manager.extension_points[EXTENSION].app


@pytest.fixture
def api(jp_fetch: Any, dr_app: Any) -> Any:
    """`await api("POST", "tasks", body={...})` -> tornado response; errors do not raise."""

    async def call(method: str, *parts: str, body: Any = None, **kwargs: Any) -> Any:
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        if method in ("POST", "PUT") and body is None:
            body = ""
        return await jp_fetch(
            "api", "deepresearch", *parts, method=method, body=body, raise_error=False, **kwargs
        )

    return call


@pytest.fixture
def server_url(jp_http_port: int, jp_base_url: str, dr_app: Any, http_server_client: Any) -> str:
    """Base URL of the extension's API on the test server's real loopback socket."""
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}api/deepresearch/"


@pytest.fixture
def http(server_url: str, jp_auth_header: dict[str, str], jp_asyncio_loop: Any) -> Any:
    """An httpx client with the server's token, for streaming with httpx-sse."""
    client = httpx.AsyncClient(base_url=server_url, headers=jp_auth_header, timeout=30)
    yield client
    jp_asyncio_loop.run_until_complete(client.aclose())


@pytest.fixture
def dr_log(dr_app: Any) -> Any:
    """Everything the extension logs during the test, as text (`dr_log.getvalue()`)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    dr_app.log.addHandler(handler)
    yield stream
    dr_app.log.removeHandler(handler)
