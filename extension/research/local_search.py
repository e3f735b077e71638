"""`local` search: BM25 over the built-in Python corpus and the request's source folders."""

from __future__ import annotations

import anyio

from .base import Hit, SearchProvider
from .doc_links import source_link
from .index import LocalIndex, open_index
from .registry import resolve_sources
from .text import counted
from .threads import run_in_daemon_thread

MAX_SKIP_NOTICES = 20  # a folder of thousands of bad links should not flood the event log


class LocalSearch(SearchProvider):
    """Offline search; the index is opened (built if needed) on the first query of a run."""

    name = "local"

    _index: LocalIndex | None = None
    _opening: anyio.Lock | None = None

    async def _get_index(self) -> LocalIndex:
        if self._opening is None:
            self._opening = anyio.Lock()
        async with self._opening:
            if self._index is None:
                folders = resolve_sources(self.settings.sources, self.root_dir)
                root = self.root_dir.resolve()
                cap = self.options.max_source_file_bytes
                # The build goes on in its thread if the run is cancelled: the cache it leaves is
                # what the next run wants anyway, and the run itself stops at once. Reading never
                # blocks (see `sources`), so the thread always ends; as a daemon it never holds
                # up a server's exit (the cache is written atomically).
                self._index = await run_in_daemon_thread(
                    open_index, self.cache_dir, folders, root, cap
                )
                await self._report_skipped(self._index)
            return self._index

    async def _report_skipped(self, index: LocalIndex) -> None:
        for skip in index.skipped[:MAX_SKIP_NOTICES]:
            await self.notice(f"Skipped {skip.path}: {skip.reason}")
        if len(index.skipped) > MAX_SKIP_NOTICES:
            more = len(index.skipped) - MAX_SKIP_NOTICES
            await self.notice(f"Skipped {counted(more, 'more source file')}")

    async def search(self, query: str) -> list[Hit]:
        index = await self._get_index()
        ranked = await run_in_daemon_thread(index.search, query, self.settings.max_results)
        # A passage's id locates it in the corpus; its link is what a reader follows.
        return [
            Hit(id=p["id"], title=p["title"], url=source_link(p["id"]), text=p["text"])
            for p, _score in ranked
        ]
