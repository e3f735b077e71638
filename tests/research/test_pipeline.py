"""The offline pipeline end to end: progress, outputs, report shape, determinism, checkpoints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from research_fakes import MemoryContext, Stop

from jupyter_deepresearch.extension.errors import ResearchError
from jupyter_deepresearch.extension.research import RunOptions, register, run_research
from jupyter_deepresearch.extension.research.extractive import ExtractiveWriter
from jupyter_deepresearch.extension.research.local_search import LocalSearch

pytestmark = pytest.mark.anyio
QUESTION = "How does asyncio cancel a task?"
STEPS = ["plan", "queries", "search", "report"]
ONE_AT_A_TIME = RunOptions(concurrency=1)


class CountingSearch(LocalSearch):
    name = "counting-local"
    calls: list[str] = []  # noqa: RUF012 (shared on purpose: counts across attempts)

    async def search(self, query: str) -> Any:
        CountingSearch.calls.append(query)
        return await super().search(query)


class CountingWriter(ExtractiveWriter):
    name = "counting-extractive"
    calls: list[str] = []  # noqa: RUF012

    async def plan(self, question: str, language: str, emit: Any) -> str:
        CountingWriter.calls.append("plan")
        return await super().plan(question, language, emit)

    async def queries(self, *args: Any) -> Any:
        CountingWriter.calls.append("queries")
        return await super().queries(*args)

    async def learnings(self, question: str, spec: Any, hits: Any, language: str) -> Any:
        CountingWriter.calls.append(f"learnings:{spec['query']}")
        return await super().learnings(question, spec, hits, language)

    async def report(self, job: Any, emit: Any) -> Any:
        CountingWriter.calls.append("report")
        return await super().report(job, emit)


register(CountingSearch)
register(CountingWriter)

COUNTED = {
    "query": QUESTION,
    "ai": {"provider": "counting-extractive"},
    "search": {"provider": "counting-local"},
    "report": {"breadth": 3, "depth": 2},
}


@pytest.fixture(autouse=True)
def _reset_counters() -> None:
    CountingSearch.calls = []
    CountingWriter.calls = []


def _calls() -> list[str]:
    return sorted(CountingSearch.calls + CountingWriter.calls)


async def test_offline_research_answers_with_citations(make_ctx: Any) -> None:
    ctx: MemoryContext = make_ctx(QUESTION)
    result = await run_research(ctx)
    report = result.report
    assert report.startswith(f"# {QUESTION}\n")
    assert "## Answer" in report and "## Sources" in report
    assert "CancelledError" in report
    ids = [s.id for s in result.sources]
    assert "python:asyncio.tasks.Task.cancel" in ids
    # Every bullet of the answer and details carries a citation, and every number is listed.
    body = report.split("## Sources")[0]
    bullets = [ln for ln in body.splitlines() if ln.startswith("- ")]
    assert bullets and all(re.search(r"\[\d+\]$", ln) for ln in bullets)
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", body)}
    assert cited == set(range(1, len(result.sources) + 1))
    listed = re.findall(r"^(\d+)\. ", report.split("## Sources")[1], re.MULTILINE)
    assert [int(n) for n in listed] == list(range(1, len(result.sources) + 1))
    for source in result.sources:
        assert source.id.startswith(("python:", "pydoc:topic:"))
        assert source.url.startswith("https://docs.python.org/3.")


async def test_progress_steps_in_order_and_never_decreasing(make_ctx: Any) -> None:
    ctx: MemoryContext = make_ctx({"query": QUESTION, "report": {"breadth": 2, "depth": 2}})
    await run_research(ctx)
    steps = [step for step, _, _ in ctx.progress_events]
    assert set(steps) == set(STEPS)
    order = [STEPS.index(step) for step in steps]
    assert order == sorted(order)
    pcts = [pct for _, pct, _ in ctx.progress_events]
    assert pcts == sorted(pcts) and pcts[-1] == 100
    assert all(isinstance(p, int) and 0 <= p <= 100 for p in pcts)
    # The report grows visibly: several output events, the sources list last.
    assert len(ctx.outputs) >= 6
    assert ctx.outputs[-1].lstrip().startswith("## Sources")


async def test_breadth_and_depth_shape_the_queries(make_ctx: Any) -> None:
    ctx: MemoryContext = make_ctx({"query": QUESTION, "report": {"breadth": 2, "depth": 3}})
    await run_research(ctx)
    for round_no in range(3):
        queries = ctx.checkpoints[f"queries:{round_no}"]
        assert 1 <= len(queries) <= 2
        for i in range(len(queries)):
            assert f"search:{round_no}.{i}" in ctx.checkpoints
            assert f"learnings:{round_no}.{i}" in ctx.checkpoints
    all_queries = [q["query"] for r in range(3) for q in ctx.checkpoints[f"queries:{r}"]]
    assert len(set(all_queries)) == len(all_queries), "later rounds must ask new questions"


async def test_same_request_gives_byte_identical_report(make_ctx: Any) -> None:
    first = await run_research(make_ctx(QUESTION))
    second = await run_research(make_ctx(QUESTION))
    assert first.report == second.report
    assert first.sources == second.sources


def test_report_identical_across_processes_and_hash_seeds(
    search_cache_dir: Path, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from research_fakes import MemoryContext
        from jupyter_deepresearch.extension.models import ResearchRequest
        from jupyter_deepresearch.extension.research import run_research
        ctx = MemoryContext(ResearchRequest(query={QUESTION!r}), Path({str(tmp_path)!r}),
                            Path({str(search_cache_dir)!r}))
        print(asyncio.run(run_research(ctx)).report)
        """
    )
    reports = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        reports.append(out.stdout)
    assert reports[0] == reports[1]
    assert "library/asyncio-task.html#asyncio.Task.cancel" in reports[0]


async def test_checkpoints_are_json_and_free_of_secrets(make_ctx: Any) -> None:
    ctx: MemoryContext = make_ctx(
        {"query": QUESTION, "search": {"provider": "local", "api_key": "sk-NEVER-SAVE-ME"}}
    )
    await run_research(ctx)
    keys = set(ctx.checkpoints)
    assert {"plan", "queries:0", "report"} <= keys
    assert {k for k in keys if k.startswith("search:")} == {
        "search:0.0",
        "search:0.1",
        "search:0.2",
    }
    dumped = json.dumps(ctx.checkpoints) + "".join(ctx.outputs) + repr(ctx.progress_events)
    assert "sk-NEVER-SAVE-ME" not in dumped


# ------------------------------------------------------------------ checkpoints and resume


async def _uninterrupted(make_ctx: Any) -> tuple[str, list[str]]:
    result = await run_research(make_ctx(COUNTED), options=ONE_AT_A_TIME)
    calls = _calls()
    CountingSearch.calls, CountingWriter.calls = [], []
    return result.report, calls


def _redone(total: list[str], reference: list[str]) -> int:
    """How many provider calls ran twice; every call of the reference run must be there."""
    assert not Counter(reference) - Counter(total)
    return sum((Counter(total) - Counter(reference)).values())


@pytest.mark.parametrize("stop_after", [0, 1, 2, 5, 9, 15])
async def test_pause_and_resume_skips_finished_units(make_ctx: Any, stop_after: int) -> None:
    reference, reference_calls = await _uninterrupted(make_ctx)
    ctx: MemoryContext = make_ctx(COUNTED, stop_after=stop_after)
    with pytest.raises(anyio.get_cancelled_exc_class()):
        await run_research(ctx, options=ONE_AT_A_TIME)
    assert len(ctx.checkpoints) == stop_after
    first_attempt = _calls()
    CountingSearch.calls, CountingWriter.calls = [], []
    resumed = ctx.resumed()
    result = await run_research(resumed, options=ONE_AT_A_TIME)
    # Finished units are skipped; only the unit in progress at the pause runs again.
    assert _redone(first_attempt + _calls(), reference_calls) == 1
    assert not set(resumed.saves) & set(ctx.saves), "a finished unit was redone"
    assert result.report == reference


@pytest.mark.parametrize("stop_after", [0, 3, 8, 15])
async def test_crash_and_resume_gives_the_same_report(make_ctx: Any, stop_after: int) -> None:
    reference, reference_calls = await _uninterrupted(make_ctx)
    ctx: MemoryContext = make_ctx(COUNTED, stop_after=stop_after, stop_how="crash")
    with pytest.raises(Stop):
        await run_research(ctx, options=ONE_AT_A_TIME)
    first_attempt = _calls()
    CountingSearch.calls, CountingWriter.calls = [], []
    resumed = ctx.resumed()
    result = await run_research(resumed, options=ONE_AT_A_TIME)
    # The unit whose checkpoint the crash lost runs again, and at most one that was in flight
    # beside it (the next query may start while the failed one unwinds); no finished unit does.
    assert 1 <= _redone(first_attempt + _calls(), reference_calls) <= 2
    assert not set(resumed.saves) & set(ctx.saves)
    assert result.report == reference


async def test_resume_after_report_calls_no_provider(make_ctx: Any) -> None:
    ctx: MemoryContext = make_ctx(COUNTED)
    first = await run_research(ctx)
    CountingSearch.calls, CountingWriter.calls = [], []
    again = await run_research(ctx.resumed())
    assert _calls() == []
    assert again == first


async def test_concurrent_queries_then_pause_resume(make_ctx: Any) -> None:
    reference = (await run_research(make_ctx(COUNTED))).report
    ctx: MemoryContext = make_ctx(COUNTED, stop_after=6)
    with pytest.raises(anyio.get_cancelled_exc_class()):
        await run_research(ctx)
    done = set(ctx.checkpoints)
    resumed = ctx.resumed()
    result = await run_research(resumed)
    assert not done & set(resumed.saves)
    assert result.report == reference


# ------------------------------------------------------------------ cancellation


async def test_cancel_during_first_index_build_is_prompt(make_ctx: Any, tmp_path: Path) -> None:
    cache = tmp_path / "fresh-cache"
    ctx: MemoryContext = make_ctx(QUESTION, cache_dir=cache)
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_research, ctx)
        await anyio.sleep(0.4)  # the built-in corpus takes seconds to index the first time
        tg.cancel_scope.cancel()
    # No timing: the run ended while the (abandoned) build had not finished its index yet, so
    # cancellation did not wait for the build.
    assert not [p for p in (cache / "index").glob("bm25-*") if (p / "meta.json").exists()]
    assert "report" not in ctx.checkpoints
    # The abandoned build goes on in its thread: let it end here, or its parsing would race
    # later tests' `ast.parse` (pytest's own included), and CPython 3.11 shares the AST
    # constructor's state between threads (see `research/pyparse.py`).
    for thread in threading.enumerate():
        if thread.name.startswith("deepresearch-"):
            thread.join(timeout=300)


async def test_missing_source_folder_fails_the_run_clearly(make_ctx: Any, tmp_path: Path) -> None:
    folder = tmp_path / "root" / "notes"
    folder.mkdir(parents=True)
    ctx: MemoryContext = make_ctx({"query": QUESTION, "search": {"sources": ["notes"]}})
    folder.rmdir()
    with pytest.raises(ResearchError, match="does not exist"):
        await run_research(ctx)
