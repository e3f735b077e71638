"""`searxng` search: `GET {base_url}/search?q=…&format=json` on a SearXNG instance."""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import BadRequest, ResearchError
from ..models import SearchSettings
from .base import Hit, SearchProvider
from .httpclient import check_base_url, endpoint, make_client, raise_for_status, with_retries

JSON_DISABLED = (
    "{base} refused JSON output (HTTP 403): the instance does not allow `format=json`. "
    "Enable it in SearXNG's settings.yml: under `search:` set `formats:` to include `json` "
    "(for example `formats: [html, json]`), then restart SearXNG."
)


class SearXNGSearch(SearchProvider):
    """Web search through a SearXNG instance's JSON API."""

    name = "searxng"
    _client: httpx.AsyncClient | None = None

    @classmethod
    def validate(cls, settings: SearchSettings, root_dir: Any) -> None:
        if not settings.base_url:
            raise BadRequest(
                'search.base_url: required for the searxng provider (e.g. "http://localhost:8080")'
            )
        check_base_url("search", settings.base_url, settings.api_key)

    @property
    def base_url(self) -> str:
        """The base URL without user-info (credentials in it go into the auth header)."""
        return endpoint(self.settings.base_url, self.settings.api_key).url

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def search(self, query: str) -> list[Hit]:
        if self._client is None:
            self._client = make_client(self.options)
        client = self._client
        target = endpoint(self.settings.base_url, self.settings.api_key)
        headers = {"Accept": "application/json", **target.headers}
        base = target.url

        async def attempt() -> Any:
            response = await client.get(
                f"{base}/search", params={"q": query, "format": "json"}, headers=headers
            )
            if response.status_code == 403:
                raise ResearchError(JSON_DISABLED.format(base=base))
            raise_for_status(
                response,
                service=base,
                has_key=target.has_key,
                key_field="search.api_key",
                body=response.text,
                not_found=f"{base}/search was not found (HTTP 404): is search.base_url a "
                "SearXNG instance?",
            )
            try:
                return response.json()
            except ValueError:
                raise ResearchError(
                    f"{base} did not answer with JSON; is search.base_url a SearXNG instance?"
                ) from None

        data = await with_retries(attempt, options=self.options, service=base)
        hits: list[Hit] = []
        seen: set[str] = set()
        for item in data.get("results", []) if isinstance(data, dict) else []:
            if not isinstance(item, dict):
                continue
            url = str(item.get("url") or "").strip()
            if not url or url in seen:
                continue
            seen.add(url)
            title = " ".join(str(item.get("title") or url).split())
            text = " ".join(str(item.get("content") or "").split()) or title
            hits.append(Hit(id=url, title=title, url=url, text=text))
            if len(hits) >= self.settings.max_results:
                break
        return hits
