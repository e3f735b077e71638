"""Is the offline default useful? Python questions and the source each answer should cite."""

from __future__ import annotations

from typing import Any

import pytest
from evaluation_set import EVALUATION_SET
from research_fakes import MemoryContext

from jupyter_deepresearch.extension.research import run_research

pytestmark = pytest.mark.anyio


async def test_at_least_80_percent_cite_the_expected_source(make_ctx: Any) -> None:
    misses = []
    for question, expected in EVALUATION_SET:
        ctx: MemoryContext = make_ctx(question)
        result = await run_research(ctx)
        cited = [s.id for s in result.sources]
        if expected not in cited:
            misses.append((question, expected, cited))
    hit_rate = 1 - len(misses) / len(EVALUATION_SET)
    assert len(EVALUATION_SET) >= 15
    assert hit_rate >= 0.8, f"hit rate {hit_rate:.0%}; misses: {misses}"


@pytest.mark.parametrize(
    ("question", "words"),
    [
        ("How does asyncio cancel a task?", ["CancelledError", "cancel"]),
        ("What does the with statement do?", ["context manager", "__enter__"]),
        ("How do I sort a list with a key function?", ["key", "ascending"]),
    ],
)
async def test_answers_say_the_right_things(make_ctx: Any, question: str, words: list[str]) -> None:
    result = await run_research(make_ctx(question))
    answer = result.report.split("## Answer", 1)[1]
    for word in words:
        assert word in answer
