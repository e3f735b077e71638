"""Scripted research pipelines that let server tests control timing and failures.

They speak the real `ResearchContext` interface; the real pipeline is tested on its own and end
to end. Behaviour is chosen by the query text so a subprocess server needs no extra wiring:

- ``units=N``: N units (default 4), each checkpointed, each ``delay=S`` seconds (default 0.02)
- ``fail-at=K``: raise a `ResearchError` in unit K (only the first time with ``fail-once``)
- ``needs-key``: raise `MissingCredentials` unless the request carries an `ai.api_key`
- ``outputs=N``: each unit emits N output events instead of one (long tasks for benchmarks)
- ``gate``: before each unit wait for `GATES[query]` (an asyncio.Event) when one is registered
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import Counter
from typing import Any

from jupyter_deepresearch.extension.errors import MissingCredentials, ResearchError
from jupyter_deepresearch.extension.models import ResearchResult, SourceRef
from jupyter_deepresearch.extension.research.context import ResearchContext

UNIT_CALLS: Counter[str] = Counter()  # "query|unit" -> times the unit's work ran
GATES: dict[str, asyncio.Event] = {}
STARTED: dict[str, asyncio.Event] = {}
FAILED: set[str] = set()


def _option(query: str, name: str, default: str) -> str:
    match = re.search(rf"\b{re.escape(name)}=(\S+)", query)
    return match.group(1) if match else default


def _saved(ctx: ResearchContext, key: str) -> Any:
    """A checkpoint this run has (every unit saved one, now or in an earlier attempt)."""
    value = ctx.checkpoint(key)
    assert value is not None, f"no checkpoint {key!r}"
    return value


async def stepped(ctx: ResearchContext) -> ResearchResult:
    """A deterministic pipeline of checkpointed units; see the module docstring."""
    query = ctx.request.query
    units = int(_option(query, "units", "4"))
    delay = float(_option(query, "delay", os.environ.get("DR_TEST_UNIT_DELAY", "0.02")))
    fail_at = int(_option(query, "fail-at", "-1"))
    per_unit = int(_option(query, "outputs", "1"))
    if query in STARTED:
        STARTED[query].set()
    if "needs-key" in query and ctx.request.ai.api_key is None:
        raise MissingCredentials("The provider needs an api_key; submit it again with one.")
    await ctx.progress("plan", 0, f"Planning {units} units")
    for unit in range(units):
        key = f"unit-{unit}"
        if ctx.checkpoint(key) is None:
            gate = GATES.get(query)
            if gate is not None:
                await gate.wait()
            await asyncio.sleep(delay)
            if unit == fail_at and not ("fail-once" in query and query in FAILED):
                FAILED.add(query)
                raise ResearchError(f"Unit {unit} failed on purpose.")
            UNIT_CALLS[f"{query}|{unit}"] += 1
            text = f"Unit {unit} of {query!r} done."
            for line in range(1, per_unit):
                await ctx.output(f"Unit {unit} line {line}.")
            await ctx.output(text)
            await ctx.save_checkpoint(key, {"text": text})
        await ctx.progress("search", int(100 * (unit + 1) / (units + 1)), f"unit {unit}")
    lines = [_saved(ctx, f"unit-{unit}")["text"] for unit in range(units)]
    report = "# Report\n\n" + "\n".join(f"- {line} [1]" for line in lines)
    await ctx.progress("report", 100, "Report written")
    return ResearchResult(
        report=report, sources=[SourceRef(id="s1", title="Scripted", url="test:scripted")]
    )


class _Paced:
    """A `ResearchContext` whose progress events take time, like a language model writing."""

    def __init__(self, ctx: ResearchContext, seconds: float) -> None:
        self._ctx = ctx
        self._seconds = seconds

    def __getattr__(self, name: str) -> Any:  # Any: it stands for every other context member
        return getattr(self._ctx, name)

    async def progress(self, step: str, percentage: int, message: str | None = None) -> None:
        await asyncio.sleep(self._seconds)
        await self._ctx.progress(step, percentage, message)


async def paced_real(ctx: ResearchContext) -> ResearchResult:
    """The real offline pipeline, each progress event delayed by $DR_TEST_PACE (default 0.15 s)."""
    from jupyter_deepresearch.extension.research import run_research

    pace = float(os.environ.get("DR_TEST_PACE", "0.15"))
    return await run_research(_Paced(ctx, pace))


async def leaky(ctx: ResearchContext) -> ResearchResult:
    """Fails with an unexpected error that quotes the request's `ai.api_key`, as an HTTP library
    quotes a header it refuses (`Illegal header value b'Bearer …'`)."""
    key = ctx.request.ai.api_key
    await ctx.progress("plan", 0, "About to fail")
    header = f"Bearer {key.get_secret_value() if key else ''}".encode()
    raise RuntimeError(f"Illegal header value {header!r}")
