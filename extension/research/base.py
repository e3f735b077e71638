"""Provider interfaces of the research pipeline and the JSON shapes that flow between steps.

A provider is one class in one module: an `AIProvider` (writes plan, queries, learnings and
report) or a `SearchProvider` (finds passages). Every shape here is plain JSON so it can be
checkpointed as it is.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypedDict

from ..models import AISettings, SearchSettings
from .context import DEFAULT_MAX_SOURCE_FILE_BYTES

Emit = Callable[[str], Awaitable[None]]


class Hit(TypedDict):
    """One search result: a passage of a source with its stable id, title and locator."""

    id: str
    title: str
    url: str
    text: str


class QuerySpec(TypedDict):
    """A search query and what it is meant to find."""

    query: str
    goal: str


class Learning(TypedDict):
    """One finding and the ids of the sources that support it."""

    text: str
    sources: list[str]


class Learnings(TypedDict):
    """What one query taught: findings plus questions worth a next round."""

    query: str
    learnings: list[Learning]
    followups: list[str]


class NumberedSource(TypedDict):
    """A source with its citation number in the report."""

    n: int
    id: str
    title: str
    url: str


@dataclass(frozen=True)
class ReportJob:
    """Everything a writer needs for the final report; learnings carry global [n] numbers."""

    question: str
    plan: str
    language: str
    learnings: list[tuple[str, str, list[int]]]  # (query, text, citation numbers)
    sources: list[NumberedSource]
    followups: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunOptions:
    """Knobs of a run that are not part of the request (tests shrink the backoff)."""

    retries: int = 4
    backoff: float = 0.5  # first retry delay in seconds, doubled each time
    max_backoff: float = 10.0
    timeout: float = 120.0  # seconds without any byte from a provider before giving up
    connect_timeout: float = 10.0
    concurrency: int = 4  # queries searched at once within a round
    max_source_file_bytes: int = DEFAULT_MAX_SOURCE_FILE_BYTES  # run_research: the context's


async def _no_notice(message: str) -> None:
    return None


class AIProvider(abc.ABC):
    """A writer: turns a question and search results into plan, queries, learnings, report."""

    kind: ClassVar[str] = "ai"
    name: ClassVar[str]
    # False for a writer whose learnings are plain text quoted from sources (to be escaped
    # before they go into Markdown); an LLM writes Markdown.
    writes_markdown: ClassVar[bool] = True

    def __init__(self, settings: AISettings, options: RunOptions) -> None:
        self.settings = settings
        self.options = options

    @classmethod
    def validate(cls, settings: AISettings) -> None:
        """Raise `errors.BadRequest` naming the field when `settings` cannot work; no I/O."""
        return None

    @property
    def model_name(self) -> str:
        """The model used, or the provider name where there is none."""
        return self.settings.model or self.name

    @abc.abstractmethod
    async def plan(self, question: str, language: str, emit: Emit) -> str:
        """A short research plan (Markdown); may stream pieces through `emit`."""

    @abc.abstractmethod
    async def queries(
        self, question: str, plan: str, previous: list[Learnings], count: int, language: str
    ) -> list[QuerySpec]:
        """Up to `count` search queries; `previous` holds earlier rounds' learnings."""

    @abc.abstractmethod
    async def learnings(
        self, question: str, spec: QuerySpec, hits: list[Hit], language: str
    ) -> Learnings:
        """Findings from `hits`, each citing the ids of the hits it comes from."""

    @abc.abstractmethod
    async def report(self, job: ReportJob, emit: Emit) -> tuple[str, list[NumberedSource]]:
        """The Markdown report body citing [n], and the sources it cites with their numbers.

        The pipeline appends the numbered Sources list itself.
        """

    async def aclose(self) -> None:
        """Release connections."""
        return None


class SearchProvider(abc.ABC):
    """A search engine: query in, ranked passages out."""

    kind: ClassVar[str] = "search"
    name: ClassVar[str]

    def __init__(
        self,
        settings: SearchSettings,
        *,
        root_dir: Path,
        cache_dir: Path,
        options: RunOptions,
        notice: Emit | None = None,
    ) -> None:
        self.settings = settings
        self.root_dir = root_dir
        self.cache_dir = cache_dir
        self.options = options
        # Tells the user something about the search (a source file skipped) as a progress message.
        self.notice: Emit = notice or _no_notice

    @classmethod
    def validate(cls, settings: SearchSettings, root_dir: Path) -> None:
        """Raise `errors.BadRequest` naming the field when `settings` cannot work; no I/O."""
        return None

    @abc.abstractmethod
    async def search(self, query: str) -> list[Hit]:
        """At most `settings.max_results` hits, best first."""

    async def aclose(self) -> None:
        """Release connections."""
        return None
