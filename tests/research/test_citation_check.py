"""Every claim of a report is checked against the passages it cites, and the result says so."""

from __future__ import annotations

from typing import Any

import pytest
from evaluation_set import EVALUATION_SET
from markdown_it import MarkdownIt
from research_fakes import FAST, FakeLLM, FakeSearXNG, MemoryContext

from jupyter_deepresearch.extension.research import register, run_research
from jupyter_deepresearch.extension.research.base import Emit, NumberedSource, ReportJob
from jupyter_deepresearch.extension.research.citation_check import (
    SUPPORT_THRESHOLD,
    check_citations,
)
from jupyter_deepresearch.extension.research.extractive import ExtractiveWriter

pytestmark = pytest.mark.anyio

QUESTION = "How does asyncio cancel a task?"
# FakeSearXNG answers query q with results "Result i says something useful about q. It has
# details."; the fake LLM's learnings cite results 1 and 2, so the report has four sources.
LLM_REPORT = """# Cancelling asyncio tasks

Result 1 says something useful about how asyncio cancels a task [1]. The moon is made of green
cheese and orbits Neptune twice a day [2]. Something useful about asyncio task cancellation is
explained in detail [9].

This sentence carries no citation at all.

- Result 2 says something useful about cancelling an asyncio task [1][2]
- See [2].

```python
items = [3]
```

> Results vary by version.
"""


class MiscountingWriter(ExtractiveWriter):
    """The extractive writer with one citation number past the end of its sources."""

    name = "miscounting-extractive"

    async def report(self, job: ReportJob, emit: Emit) -> tuple[str, list[NumberedSource]]:
        body, sources = await super().report(job, emit)
        return body + f"\nThe first source says it again [{len(sources) + 1}].\n", sources


register(MiscountingWriter)


def _sources(*texts: str) -> tuple[list[NumberedSource], dict[str, list[str]]]:
    sources = [
        NumberedSource(n=n, id=f"s{n}", title=f"Source {n}", url=f"https://example.org/{n}")
        for n in range(1, len(texts) + 1)
    ]
    return sources, {f"s{n}": [text] for n, text in enumerate(texts, 1)}


async def test_llm_report_claims_are_checked_and_marked(
    fake_llm: FakeLLM, fake_searxng: FakeSearXNG, make_ctx: Any
) -> None:
    fake_llm.answers["report"] = LLM_REPORT
    ctx: MemoryContext = make_ctx(
        {
            "query": QUESTION,
            "ai": {"provider": "openai-compatible", "model": "m", "base_url": f"{fake_llm.url}/v1"},
            "search": {"provider": "searxng", "base_url": fake_searxng.url, "max_results": 3},
            "report": {"breadth": 2},
        }
    )
    result = await run_research(ctx, options=FAST)
    found = [(c.claim.split()[0], c.sources, c.supported, c.problem) for c in result.citations]
    assert found == [
        ("Result", [1], True, None),
        ("The", [2], False, "unsupported"),
        ("Something", [9], False, "unknown_source"),
        ("This", [], False, "uncited"),
        ("Result", [1, 2], True, None),
    ], "headings, code blocks, notes and a bare 'See [2].' are not claims"
    assert result.citations[0].claim == (
        "Result 1 says something useful about how asyncio cancels a task"
    )
    assert result.citations[0].score >= SUPPORT_THRESHOLD > result.citations[1].score
    assert result.citation_support == pytest.approx(2 / 5)

    report = result.report
    assert "Citation check:** 2 of 5 claims are supported by the passages they cite." in report
    assert "1 unsupported claim, 1 claim citing a number that names no source" in report
    assert "1 claim without citation" in report
    assert "twice a day [2]. ⚠ *unsupported by the cited passage*" in report
    assert "in detail [9]. ⚠ *cites a number that names no source*" in report
    assert "no citation at all. ⚠ *no citation*" in report
    assert "task [1] ⚠" not in report and "[1][2] ⚠" not in report
    assert "items = [3]\n" in report, "code blocks are left alone"
    # The markers render as text in any Markdown renderer; the sources are links.
    html = MarkdownIt("commonmark").render(report)
    assert html.count("⚠ <em>") == 3
    assert '<a href="https://example.org/' in html
    assert [s.url.startswith("https://example.org/") for s in result.sources] == [True, True]


async def test_a_number_naming_no_source_is_flagged_whoever_wrote_it(make_ctx: Any) -> None:
    result = await run_research(
        make_ctx({"query": QUESTION, "ai": {"provider": "miscounting-extractive"}})
    )
    last = result.citations[-1]
    assert (last.sources, last.supported, last.problem) == (
        [len(result.sources) + 1],
        False,
        "unknown_source",
    )
    assert all(c.supported for c in result.citations[:-1])
    assert result.citation_support == pytest.approx(1 - 1 / len(result.citations))
    marked = f"again [{len(result.sources) + 1}]. ⚠ *cites a number that names no source*"
    assert marked in result.report


def test_a_claim_is_as_strong_as_its_weakest_sentence() -> None:
    sources, passages = _sources("Tasks are cancelled by calling cancel on them.")
    both = "Tasks are cancelled by calling cancel. Dragons breathe fire over mountains [1]."
    checked = check_citations(both + "\n", sources, passages)
    [claim] = checked.claims
    assert not claim.supported and claim.problem == "unsupported"
    alone = check_citations("Tasks are cancelled by calling cancel [1].\n", sources, passages)
    assert alone.claims[0].supported and alone.claims[0].score == 1.0


def test_claims_cite_the_union_of_their_sources() -> None:
    sources, passages = _sources(
        "Locks guard shared state.", "Semaphores bound concurrency and queue waiting tasks."
    )
    claim = "Locks guard state; semaphores bound concurrency and queue waiting tasks"
    both = check_citations(f"{claim} [1][2].\n", sources, passages)
    assert both.claims[0].supported
    one = check_citations(f"{claim} [1].\n", sources, passages)
    assert not one.claims[0].supported


def test_markers_in_code_and_escaped_brackets_are_not_citations() -> None:
    sources, passages = _sources("The list holds values.")
    body = "Indexing `a[1]` returns the second item \\[1\\] of the list, as documented.\n"
    checked = check_citations(body, sources, passages)
    assert [c.problem for c in checked.claims] == ["uncited"]
    assert checked.claims[0].claim.startswith("Indexing a[1] returns")


def test_tables_headings_and_notes_are_not_claims() -> None:
    sources, passages = _sources("Anything at all.")
    body = (
        "# A title that would be a claim [2]\n\n"
        "| a | b |\n| - | - |\n| one cell with several words | two |\n\n"
        "> A note to the reader with several words.\n\n"
        "`name`, `other_name`, `third`\n"
    )
    checked = check_citations(body, sources, passages)
    assert checked.claims == [] and checked.support is None
    assert checked.body == body
    assert checked.summary == "**Citation check:** the report makes no claim to check."


def test_singular_summary() -> None:
    sources, passages = _sources("Queues pass items between tasks.")
    checked = check_citations("Queues pass items between tasks [1].\n", sources, passages)
    assert checked.summary == (
        "**Citation check:** 1 of 1 claim is supported by the passages they cite."
    )


@pytest.mark.parametrize(("question", "expected"), EVALUATION_SET)
async def test_extractive_writer_is_fully_supported(
    make_ctx: Any, question: str, expected: str
) -> None:
    result = await run_research(make_ctx(question))
    assert result.citations, "the offline answer makes claims"
    unsupported = [c for c in result.citations if not c.supported]
    assert unsupported == []
    assert result.citation_support == 1.0
    assert "⚠" not in result.report
    assert "Citation check:** " in result.report
    # Every number a claim cites names a listed source.
    listed = set(range(1, len(result.sources) + 1))
    assert {n for c in result.citations for n in c.sources} <= listed
