"""Rounds that learn: `breadth` queries a round, none asked twice, an early stop that says why."""

from __future__ import annotations

import re
from typing import Any

import pytest
from research_fakes import MemoryContext

from jupyter_deepresearch.extension.research import register, run_research
from jupyter_deepresearch.extension.research.base import Learnings, QuerySpec
from jupyter_deepresearch.extension.research.extractive import ExtractiveWriter
from jupyter_deepresearch.extension.research.local_search import LocalSearch

pytestmark = pytest.mark.anyio
QUESTION = "How does asyncio cancel a task?"


class RepeatingWriter(ExtractiveWriter):
    """Proposes the question itself in every round, as a writer out of ideas does."""

    name = "repeating-extractive"

    async def queries(
        self, question: str, plan: str, previous: list[Learnings], count: int, language: str
    ) -> list[QuerySpec]:
        return [QuerySpec(query=question, goal="again"), QuerySpec(query=question.upper(), goal="")]


class RecordingSearch(LocalSearch):
    name = "recording-local"
    queries: list[str] = []  # noqa: RUF012 (shared on purpose: one list per test)

    async def search(self, query: str) -> Any:
        RecordingSearch.queries.append(query)
        return await super().search(query)


register(RepeatingWriter)
register(RecordingSearch)


@pytest.fixture(autouse=True)
def _reset() -> None:
    RecordingSearch.queries = []


def _messages(ctx: MemoryContext) -> list[str]:
    return [message for _, _, message in ctx.progress_events if message]


@pytest.mark.parametrize("breadth", [1, 6, 10])
async def test_offline_first_round_has_breadth_queries(make_ctx: Any, breadth: int) -> None:
    ctx: MemoryContext = make_ctx({"query": QUESTION, "report": {"breadth": breadth}})
    await run_research(ctx)
    queries = [q["query"] for q in ctx.checkpoints["queries:0"]]
    assert len(queries) == breadth == len(set(queries))


async def test_a_round_without_new_queries_stops_the_research_and_says_why(
    make_ctx: Any,
) -> None:
    ctx: MemoryContext = make_ctx(
        {
            "query": QUESTION,
            "ai": {"provider": "repeating-extractive"},
            "search": {"provider": "recording-local"},
            "report": {"breadth": 3, "depth": 4},
        }
    )
    result = await run_research(ctx)
    assert RecordingSearch.queries == [QUESTION], "the same question is searched once"
    assert ctx.checkpoints["queries:1"] == []
    assert "queries:2" not in ctx.checkpoints
    assert (
        "Round 2 brought no new search queries: the research stops after 1 round of 4."
        in _messages(ctx)
    )
    assert result.citation_support == 1.0
    # A resumed run stops at the same place without asking the writer again.
    resumed = ctx.resumed()
    again = await run_research(resumed)
    assert again.report == result.report


async def test_offline_deep_research_never_searches_a_query_twice(make_ctx: Any) -> None:
    """Regression: breadth 10, depth 5 searched the same question in rounds 3, 4 and 5."""
    ctx: MemoryContext = make_ctx(
        {
            "query": QUESTION,
            "search": {"provider": "recording-local"},
            "report": {"breadth": 10, "depth": 5},
        }
    )
    await run_research(ctx)
    searched = [" ".join(q.lower().split()) for q in RecordingSearch.queries]
    assert len(searched) == len(set(searched))
    rounds = sum(1 for key in ctx.checkpoints if key.startswith("queries:"))
    stopped = any("brought no new search queries" in m for m in _messages(ctx))
    assert rounds == 5 or stopped


async def test_counts_in_messages_agree_with_their_nouns(make_ctx: Any) -> None:
    ctx: MemoryContext = make_ctx(
        {"query": QUESTION, "search": {"max_results": 1}, "report": {"breadth": 1, "depth": 2}}
    )
    await run_research(ctx)
    messages = _messages(ctx)
    assert "1 search query" in messages and "1 follow-up query" in messages
    assert any(m.startswith("1 result for: ") for m in messages)
    assert any(re.match(r"1 learning from: ", m) for m in messages)
    wrong = re.compile(r"\b1 (results|learnings|search queries|follow-up queries)\b")
    assert not [m for m in messages if wrong.search(m)]
