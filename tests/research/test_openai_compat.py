"""The `openai-compatible` writer against a loopback server that streams chat completions."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anyio
import pytest
from research_fakes import FAST, FakeLLM, FakeSearXNG, MemoryContext, free_port

from jupyter_deepresearch.extension.errors import MissingCredentials, ResearchError
from jupyter_deepresearch.extension.models import AISettings
from jupyter_deepresearch.extension.research import run_research
from jupyter_deepresearch.extension.research.base import Hit, RunOptions
from jupyter_deepresearch.extension.research.openai_compat import (
    OpenAICompatible,
    parse_learnings,
    parse_queries,
)

pytestmark = pytest.mark.anyio
SECRET = "sk-test-SECRET-0123456789"


def _llm(fake: FakeLLM, **ai: Any) -> OpenAICompatible:
    settings = AISettings.model_validate(
        {"provider": "openai-compatible", "model": "m", "base_url": f"{fake.url}/v1", **ai}
    )
    return OpenAICompatible(settings, FAST)


def _request(fake_llm: FakeLLM, fake_searxng: FakeSearXNG, **ai: Any) -> dict[str, Any]:
    return {
        "query": "How does asyncio cancel a task?",
        "ai": {
            "provider": "openai-compatible",
            "model": "m",
            "base_url": f"{fake_llm.url}/v1",
            **ai,
        },
        "search": {"provider": "searxng", "base_url": fake_searxng.url, "max_results": 3},
        "report": {"breadth": 2},
    }


async def test_streams_chunks_split_across_reads(fake_llm: FakeLLM) -> None:
    llm = _llm(fake_llm)
    pieces: list[str] = []

    async def emit(text: str) -> None:
        pieces.append(text)

    try:
        text = await llm.chat("m", "Write the final report <question>Q?</question>", emit=emit)
    finally:
        await llm.aclose()
    assert text == "# Report\n\nThe answer to Q? is known [1]. More detail [2].\n"
    assert "".join(pieces) == text
    assert len(pieces) >= 2, "the report must grow while it streams"
    assert llm.usage["total_tokens"] > 0, "the usage chunk is read"


async def test_think_blocks_are_hidden(fake_llm: FakeLLM) -> None:
    llm = _llm(fake_llm)
    try:
        plan = await llm.plan("Q?", "en", _ignore)
    finally:
        await llm.aclose()
    assert "<think>" not in plan and plan.startswith("## Research plan")


async def _ignore(text: str) -> None:
    return None


async def test_full_research_with_llm_and_searxng(
    fake_llm: FakeLLM, fake_searxng: FakeSearXNG, make_ctx: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    ctx: MemoryContext = make_ctx(_request(fake_llm, fake_searxng, api_key=SECRET))
    fake_llm.api_key = SECRET
    result = await run_research(ctx, options=FAST)
    assert result.report.startswith("# Report")
    assert "## Sources" in result.report
    assert result.sources[0].url.startswith("https://example.org/")
    assert fake_llm.calls("plan") == 1 and fake_llm.calls("queries") == 1
    assert fake_llm.calls("learnings") == 2 and fake_llm.calls("report") == 1
    assert len(fake_searxng.requests) == 2
    # The key went to the server and nowhere else.
    assert all(r["auth"] == f"Bearer {SECRET}" for r in fake_llm.requests)
    everything = json.dumps(ctx.checkpoints) + "".join(ctx.outputs) + repr(ctx.progress_events)
    assert SECRET not in everything + result.model_dump_json() + repr(ctx.request)
    assert caplog.text and SECRET not in caplog.text


async def test_thinking_and_task_models(
    fake_llm: FakeLLM, fake_searxng: FakeSearXNG, make_ctx: Any
) -> None:
    body = _request(fake_llm, fake_searxng, thinking_model="big", task_model="small")
    await run_research(make_ctx(body), options=FAST)
    models = {r["kind"]: r["model"] for r in fake_llm.requests}
    assert models == {"plan": "big", "queries": "small", "learnings": "small", "report": "big"}


async def test_resume_makes_no_calls_for_finished_units(
    fake_llm: FakeLLM, fake_searxng: FakeSearXNG, make_ctx: Any
) -> None:
    reference = await run_research(make_ctx(_request(fake_llm, fake_searxng)), options=FAST)
    fake_llm.requests.clear()
    fake_searxng.requests.clear()
    ctx: MemoryContext = make_ctx(_request(fake_llm, fake_searxng), stop_after=4)
    with pytest.raises(anyio.get_cancelled_exc_class()):
        await run_research(ctx, options=RunOptions(concurrency=1, backoff=0.01))
    first = len(fake_llm.requests) + len(fake_searxng.requests)
    result = await run_research(ctx.resumed(), options=FAST)
    total = len(fake_llm.requests) + len(fake_searxng.requests)
    # plan, queries, 2 x (search, learnings), report = 7 calls; one unit was in progress.
    assert first <= 5 and total == 8
    assert result.report == reference.report


async def test_retries_429_and_5xx_then_succeeds(fake_llm: FakeLLM) -> None:
    fake_llm.statuses = [429, 500, 503]
    llm = _llm(fake_llm)
    try:
        text = await llm.chat("m", "Write a short research plan <question>Q</question>")
    finally:
        await llm.aclose()
    assert "Research plan" in text
    assert fake_llm.calls() == 4


async def test_gives_up_after_the_retries(fake_llm: FakeLLM) -> None:
    fake_llm.statuses = [502] * 10
    llm = _llm(fake_llm)
    with pytest.raises(ResearchError, match="HTTP 502 after 4 attempts"):
        await llm.chat("m", "hi")
    await llm.aclose()


async def test_401_with_a_key_says_it_was_rejected(fake_llm: FakeLLM, caplog: Any) -> None:
    fake_llm.api_key = "the-right-one"
    llm = _llm(fake_llm, api_key=SECRET)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ResearchError) as info:
        await llm.chat("m", "hi")
    await llm.aclose()
    assert not isinstance(info.value, MissingCredentials)
    assert f"rejected by {fake_llm.url}/v1" in str(info.value)
    assert SECRET not in str(info.value) + caplog.text + repr(llm.settings)


async def test_401_without_a_key_is_missing_credentials(fake_llm: FakeLLM) -> None:
    fake_llm.api_key = "needed"
    llm = _llm(fake_llm)
    with pytest.raises(MissingCredentials, match=r"requires an API key.*ai\.api_key"):
        await llm.chat("m", "hi")
    await llm.aclose()


async def test_404_names_the_unknown_model(fake_llm: FakeLLM) -> None:
    llm = _llm(fake_llm)
    with pytest.raises(ResearchError, match=r"Model 'missing' was not found .*ai\.model"):
        await llm.chat("missing", "hi")
    await llm.aclose()


async def test_echoed_key_is_redacted(fake_llm: FakeLLM) -> None:
    llm = _llm(fake_llm, api_key=SECRET)
    with pytest.raises(ResearchError) as info:
        await llm.chat("echo-key", "hi")
    await llm.aclose()
    assert "HTTP 400" in str(info.value) and SECRET not in str(info.value)


async def test_connection_refused(make_ctx: Any) -> None:
    port = free_port()
    settings = AISettings(
        provider="openai-compatible", model="m", base_url=f"http://127.0.0.1:{port}/v1"
    )
    llm = OpenAICompatible(settings, FAST)
    with pytest.raises(ResearchError, match="connection refused"):
        await llm.chat("m", "hi")
    await llm.aclose()


async def test_timeout(fake_llm: FakeLLM) -> None:
    settings = AISettings(provider="openai-compatible", model="slow", base_url=f"{fake_llm.url}/v1")
    llm = OpenAICompatible(settings, RunOptions(timeout=0.3, retries=0))
    started = time.monotonic()
    with pytest.raises(ResearchError, match=r"did not answer within 0\.3 seconds"):
        await llm.chat("slow", "hi")
    await llm.aclose()
    assert time.monotonic() - started < 10  # the fake would hold the answer far longer


async def test_cancel_during_stream_is_prompt(fake_llm: FakeLLM) -> None:
    llm = _llm(fake_llm)
    received: list[str] = []

    async def emit(text: str) -> None:
        received.append(text)

    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: llm.chat("trickle", "Write the final report <question>Q</question>", emit=emit)
        )
        await anyio.sleep(0.5)
        cancelled_at = time.monotonic()
        tg.cancel_scope.cancel()
    assert time.monotonic() - cancelled_at < 10  # the trickle would outlast this by far
    await llm.aclose()


def test_parse_queries_json_and_lines() -> None:
    text = 'Sure!\n```json\n{"queries": [{"query": "a b", "goal": "g"}, {"query": "c"}]}\n```'
    assert parse_queries(text, 5) == [{"query": "a b", "goal": "g"}, {"query": "c", "goal": ""}]
    assert parse_queries('["x", "y", "x"]', 5) == [
        {"query": "x", "goal": ""},
        {"query": "y", "goal": ""},
    ]
    lines = "Here are the queries:\n1. first query\n2) second query\n- third query\n"
    assert [q["query"] for q in parse_queries(lines, 2)] == ["first query", "second query"]


def test_parse_learnings_maps_citations_to_sources() -> None:
    hits: list[Hit] = [
        {"id": f"u{i}", "title": f"t{i}", "url": f"https://x/{i}", "text": "..."} for i in (1, 2)
    ]
    text = (
        "Learnings:\n- A fact [1].\n- Two facts [1][2]\n- Bad number [9]\n"
        "Follow-up questions:\n- Why?\n"
    )
    parsed = parse_learnings(text, "q", hits)
    assert parsed["learnings"] == [
        {"text": "A fact.", "sources": ["u1"]},
        {"text": "Two facts", "sources": ["u1", "u2"]},
        {"text": "Bad number", "sources": []},
    ]
    assert parsed["followups"] == ["Why?"]


async def test_queries_fall_back_to_lines(fake_llm: FakeLLM) -> None:
    fake_llm.queries_format = "lines"
    llm = _llm(fake_llm)
    try:
        specs = await llm.queries("Q?", "plan", [], 3, "en")
    finally:
        await llm.aclose()
    assert [s["query"] for s in specs] == ["Q? aspect 1", "Q? aspect 2", "Q? aspect 3"]


async def test_run_without_needed_key_raises_missing_credentials(
    fake_llm: FakeLLM, fake_searxng: FakeSearXNG, make_ctx: Any
) -> None:
    fake_llm.api_key = "needed"
    ctx: MemoryContext = make_ctx(_request(fake_llm, fake_searxng))
    with pytest.raises(MissingCredentials, match=r"ai\.api_key"):
        await run_research(ctx, options=FAST)
    assert "plan" not in ctx.checkpoints


async def test_searxng_403_fails_the_run_with_the_fix(
    fake_llm: FakeLLM, fake_searxng: FakeSearXNG, make_ctx: Any
) -> None:
    fake_searxng.json_enabled = False
    ctx: MemoryContext = make_ctx(_request(fake_llm, fake_searxng))
    # Raised from inside the concurrent search round: the error itself, not an exception group.
    with pytest.raises(ResearchError, match=r"settings\.yml"):
        await run_research(ctx, options=FAST)
    assert "plan" in ctx.checkpoints and "report" not in ctx.checkpoints


async def test_server_rejecting_stream_options_is_asked_again_without(fake_llm: FakeLLM) -> None:
    llm = _llm(fake_llm)
    try:
        text = await llm.chat("strict", "Write a short research plan <question>Q</question>")
        again = await llm.chat("strict", "Write a short research plan <question>Q</question>")
    finally:
        await llm.aclose()
    assert "Research plan" in text and text == again
    assert fake_llm.calls() == 3  # rejected once, then never sent again


async def test_second_round_builds_on_the_first(
    fake_llm: FakeLLM, fake_searxng: FakeSearXNG, make_ctx: Any
) -> None:
    body = {**_request(fake_llm, fake_searxng), "report": {"breadth": 2, "depth": 2}}
    ctx: MemoryContext = make_ctx(body)
    await run_research(ctx, options=FAST)
    second = [q["query"] for q in ctx.checkpoints["queries:1"]]
    assert second and all(q.startswith("deeper ") for q in second)
    assert fake_llm.calls("learnings") == 4 and len(fake_searxng.requests) == 4
