"""Fixtures of the research engine tests (the fakes themselves live in `research_fakes`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from research_fakes import FakeLLM, FakeSearXNG, MemoryContext

from jupyter_deepresearch.extension.models import ResearchRequest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _anyio_backend_requested(anyio_backend: str) -> None:
    # anyio's plugin re-parametrizes (over every installed backend, dropping other parameters)
    # async tests whose fixture closure lacks `anyio_backend`; requesting it here prevents that.
    return None


@pytest.fixture
def make_ctx(tmp_path: Path, search_cache_dir: Path) -> Any:
    """Build a `MemoryContext` for a request given as a dict (validated like the server does)."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)

    def make(request: dict[str, Any] | str, **kwargs: Any) -> MemoryContext:
        body = {"query": request} if isinstance(request, str) else request
        return MemoryContext(
            request=ResearchRequest.model_validate(body),
            root_dir=kwargs.pop("root_dir", root),
            cache_dir=kwargs.pop("cache_dir", search_cache_dir),
            **kwargs,
        )

    return make


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_searxng() -> Iterator[FakeSearXNG]:
    server = FakeSearXNG()
    server.start()
    yield server
    server.stop()
