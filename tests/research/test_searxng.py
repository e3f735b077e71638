"""The `searxng` search provider against a real loopback server speaking SearXNG's JSON API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from research_fakes import FAST, FakeSearXNG, free_port

from jupyter_deepresearch.extension.errors import MissingCredentials, ResearchError
from jupyter_deepresearch.extension.models import SearchSettings
from jupyter_deepresearch.extension.research.searxng import SearXNGSearch

pytestmark = pytest.mark.anyio


def _search(base_url: str, **settings: Any) -> SearXNGSearch:
    model = SearchSettings.model_validate({"provider": "searxng", "base_url": base_url, **settings})
    return SearXNGSearch(model, root_dir=Path("."), cache_dir=Path("."), options=FAST)


async def test_results_are_trimmed_and_deduplicated(fake_searxng: FakeSearXNG) -> None:
    search = _search(fake_searxng.url + "/", max_results=3)
    try:
        hits = await search.search("asyncio cancel")
    finally:
        await search.aclose()
    assert [h["url"] for h in hits] == [
        f"https://example.org/asyncio-cancel/{i}" for i in (1, 2, 3)
    ]
    assert hits[0]["id"] == hits[0]["url"]
    assert hits[0]["title"] == "Result 1 about asyncio cancel"
    assert "something useful" in hits[0]["text"]
    assert fake_searxng.requests[0]["params"] == {"q": ["asyncio cancel"], "format": ["json"]}


async def test_403_explains_how_to_enable_json(fake_searxng: FakeSearXNG) -> None:
    fake_searxng.json_enabled = False
    search = _search(fake_searxng.url)
    with pytest.raises(ResearchError, match=r"settings\.yml.*formats.*json") as info:
        await search.search("x")
    await search.aclose()
    assert "HTTP 403" in str(info.value)


async def test_connection_refused_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    search = _search(url)
    with pytest.raises(ResearchError, match=f"Could not connect to {url}: connection refused"):
        await search.search("x")
    await search.aclose()


async def test_401_without_key_is_missing_credentials(
    fake_searxng: FakeSearXNG, monkeypatch: Any
) -> None:
    search = _search(fake_searxng.url)

    async def fake_get(*args: Any, **kwargs: Any) -> Any:
        import httpx

        return httpx.Response(401, request=httpx.Request("GET", fake_searxng.url))

    await search.search("warm up")  # creates the client
    assert search._client is not None
    monkeypatch.setattr(search._client, "get", fake_get)
    with pytest.raises(MissingCredentials, match=r"search\.api_key"):
        await search.search("x")
    await search.aclose()
