"""The interface between the task manager and the research pipeline.

The manager builds a `ResearchContext` for every run and awaits `run_research(ctx)`; it cancels a
run by cancelling the awaiting task (anyio/asyncio cancellation), so the pipeline must hold no
state that a cancellation could leave half-written outside its checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from ..models import ResearchRequest, ResearchResult

JSONValue = Any  # anything `json.dumps` accepts; checkpoints must round-trip through JSON
DEFAULT_MAX_SOURCE_FILE_BYTES = 5_000_000


class ResearchContext(Protocol):
    """What a running pipeline may do: report progress, emit output, keep checkpoints."""

    @property
    def request(self) -> ResearchRequest:
        """The resolved request (server defaults applied), secrets included, for this run only."""
        ...

    @property
    def root_dir(self) -> Path:
        """The Jupyter server's root directory; `search.sources` must resolve inside it."""
        ...

    @property
    def cache_dir(self) -> Path:
        """A writable folder for caches that outlive runs (the search index)."""
        ...

    @property
    def max_source_file_bytes(self) -> int:
        """The largest file of a source folder that is read; larger ones are skipped."""
        ...

    async def progress(self, step: str, percentage: int, message: str | None = None) -> None:
        """Emit a `progress` event; the manager keeps percentages from going backwards."""
        ...

    async def output(self, text: str) -> None:
        """Emit one `output` event (one entry of the seed's `outputs`)."""
        ...

    def checkpoint(self, key: str) -> JSONValue | None:
        """The value saved under `key` by an earlier attempt of this run, or None."""
        ...

    async def save_checkpoint(self, key: str, value: JSONValue) -> None:
        """Durably record a finished unit so a resumed run can skip it."""
        ...


class ResearchPipeline(Protocol):
    """Callable the manager runs: `await pipeline(ctx)` returns the final result."""

    async def __call__(self, ctx: ResearchContext) -> ResearchResult: ...
