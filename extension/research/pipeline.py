"""The deep-research pipeline: plan → queries → search (results, learnings) → report.

Every finished unit is checkpointed (`plan`, `queries:<round>`, `search:<round>.<i>`,
`learnings:<round>.<i>`, `report`), so a resumed run skips it without calling a provider, and
the report of a resumed run is the report of an uninterrupted one. Cancellation (pause, cancel,
shutdown) arrives as anyio/asyncio cancellation and simply abandons the unit in progress.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Any

import anyio

from ..errors import BadRequest, DeepResearchError, ResearchError
from ..markdown_text import escape
from ..models import ResearchResult, SourceRef
from .base import (
    AIProvider,
    Hit,
    Learnings,
    NumberedSource,
    QuerySpec,
    ReportJob,
    RunOptions,
    SearchProvider,
)
from .citation_check import check_citations
from .citations import sources_section
from .context import ResearchContext
from .registry import provider_class, validate_request
from .text import counted, normalise_space

if sys.version_info < (3, 11):  # anyio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger(__name__)

# Percentage bands of the steps; inside `search` each query unit moves the bar a little.
PLAN_DONE, QUERIES_DONE, SEARCH_DONE = 5, 10, 90


async def run_research(
    ctx: ResearchContext, *, options: RunOptions | None = None
) -> ResearchResult:
    """Run (or resume) the research of `ctx.request` and return the report with its sources."""
    # The file cap is the server's setting, whatever else the caller tuned.
    options = dataclasses.replace(
        options or RunOptions(), max_source_file_bytes=ctx.max_source_file_bytes
    )
    request = ctx.request
    try:
        validate_request(request, ctx.root_dir)
    except BadRequest as exc:  # e.g. a source folder removed since the task was created
        raise ResearchError(exc.message) from None

    async def notice(message: str) -> None:
        await run.progress("search", run.pct, message)  # `run` exists before any search

    ai: AIProvider = provider_class("ai", request.ai.provider)(request.ai, options)
    search: SearchProvider = provider_class("search", request.search.provider)(
        request.search,
        root_dir=ctx.root_dir,
        cache_dir=ctx.cache_dir,
        options=options,
        notice=notice,
    )
    run = _Run(ctx, ai, search, options)
    try:
        return await run.run()
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            await ai.aclose()
            await search.aclose()


class _Run:
    def __init__(
        self, ctx: ResearchContext, ai: AIProvider, search: SearchProvider, options: RunOptions
    ) -> None:
        self.ctx = ctx
        self.ai = ai
        self.search = search
        self.options = options
        self.request = ctx.request
        self.language = self.request.report.language
        self.question = " ".join(self.request.query.split())
        self.breadth = self.request.report.breadth
        self.depth = self.request.report.depth
        self.units_total = self.depth * self.breadth * 2 + self.depth
        self.units_done = 0
        self.pct = 0

    async def progress(self, step: str, pct: int, message: str) -> None:
        self.pct = max(self.pct, min(100, pct))
        await self.ctx.progress(step, self.pct, message)

    async def unit_done(self, message: str) -> None:
        self.units_done += 1
        span = SEARCH_DONE - QUERIES_DONE
        pct = QUERIES_DONE + span * min(self.units_done, self.units_total) // self.units_total
        await self.progress("search", pct, message)

    async def run(self) -> ResearchResult:
        done = self.ctx.checkpoint("report")
        if done is not None:
            await self.progress("report", 100, "Report already written")
            return ResearchResult.model_validate(done)
        plan = await self.plan()
        previous: list[Learnings] = []
        hits_by_id: dict[str, Hit] = {}
        passages: dict[str, list[str]] = {}  # every passage retrieved, by source id
        for round_no in range(self.depth):
            specs = await self.queries(round_no, plan, previous)
            if not specs:
                break
            results = await self.search_round(round_no, specs)
            for hits, learnings in results:
                for hit in hits:
                    hits_by_id.setdefault(hit["id"], hit)
                    texts = passages.setdefault(hit["id"], [])
                    if hit["text"] not in texts:
                        texts.append(hit["text"])
                previous.append(learnings)
            # A round with fewer queries than `breadth` still counts all of its units.
            self.units_done = (round_no + 1) * (self.breadth * 2 + 1)
        return await self.report(plan, previous, hits_by_id, passages)

    async def plan(self) -> str:
        saved = self.ctx.checkpoint("plan")
        if isinstance(saved, dict):
            await self.progress("plan", PLAN_DONE, "Research plan ready")
            return str(saved["plan"])
        await self.progress("plan", 0, "Writing the research plan")
        plan = await self.ai.plan(self.question, self.language, self._stream)
        await self.ctx.save_checkpoint("plan", {"plan": plan})
        await self.ctx.output(plan if plan.endswith("\n") else plan + "\n")
        await self.progress("plan", PLAN_DONE, "Research plan ready")
        return plan

    async def queries(self, round_no: int, plan: str, previous: list[Learnings]) -> list[QuerySpec]:
        """The round's new queries; none after the first round ends the research early."""
        key = f"queries:{round_no}"
        saved = self.ctx.checkpoint(key)
        if isinstance(saved, list):
            specs = [QuerySpec(query=s["query"], goal=s.get("goal", "")) for s in saved]
        else:
            # Later rounds' queries belong to the search step: steps never go back.
            step = "queries" if round_no == 0 else "search"
            await self.progress(step, self.pct, f"Generating search queries (round {round_no + 1})")
            specs = await self.ai.queries(
                self.question, plan, previous, self.breadth, self.language
            )
            specs = _new_queries(specs, previous)[: self.breadth]
            if not specs and round_no == 0:
                specs = [QuerySpec(query=self.question, goal="Answer the question directly")]
            await self.ctx.save_checkpoint(key, list(specs))
            if specs:
                listing = "\n".join(
                    f"{i}. {escape(s['query'])}" + (f" — {escape(s['goal'])}" if s["goal"] else "")
                    for i, s in enumerate(specs, 1)
                )
                await self.ctx.output(f"\n## Search queries (round {round_no + 1})\n\n{listing}\n")
        self.units_done += 1
        if round_no == 0:
            planned = counted(len(specs), "search query", "search queries")
            await self.progress("queries", QUERIES_DONE, planned)
        elif specs:
            await self.unit_done(counted(len(specs), "follow-up query", "follow-up queries"))
        else:
            # Searching old queries again would only repeat what the earlier rounds learned.
            await self.progress(
                "search",
                self.pct,
                f"Round {round_no + 1} brought no new search queries: the research stops "
                f"after {counted(round_no, 'round')} of {self.depth}.",
            )
        return specs

    async def search_round(
        self, round_no: int, specs: list[QuerySpec]
    ) -> list[tuple[list[Hit], Learnings]]:
        results: list[tuple[list[Hit], Learnings] | None] = [None] * len(specs)
        limiter = anyio.CapacityLimiter(max(1, self.options.concurrency))

        async def one(i: int, spec: QuerySpec) -> None:
            async with limiter:
                results[i] = await self.query_unit(f"{round_no}.{i}", spec)

        try:
            async with anyio.create_task_group() as tg:
                for i, spec in enumerate(specs):
                    tg.start_soon(one, i, spec)
        except BaseExceptionGroup as group:
            # The manager expects the error itself (ResearchError, MissingCredentials...).
            raise _first_error(group) from None
        return [r for r in results if r is not None]

    async def query_unit(self, key: str, spec: QuerySpec) -> tuple[list[Hit], Learnings]:
        saved_hits = self.ctx.checkpoint(f"search:{key}")
        if isinstance(saved_hits, list):
            hits = [
                Hit(id=h["id"], title=h["title"], url=h["url"], text=h["text"]) for h in saved_hits
            ]
        else:
            await self.progress("search", self.pct, f"Searching: {spec['query']}")
            hits = (await self.search.search(spec["query"]))[: self.request.search.max_results]
            await self.ctx.save_checkpoint(f"search:{key}", list(hits))
        await self.unit_done(f"{counted(len(hits), 'result')} for: {spec['query']}")
        saved = self.ctx.checkpoint(f"learnings:{key}")
        if isinstance(saved, dict):
            learnings = _learnings_from_json(saved)
        else:
            learnings = await self.ai.learnings(self.question, spec, hits, self.language)
            await self.ctx.save_checkpoint(f"learnings:{key}", dict(learnings))
            text = _learnings_text(learnings, hits, markdown=self.ai.writes_markdown)
            await self.ctx.output(text)
        found = counted(len(learnings["learnings"]), "learning")
        await self.unit_done(f"{found} from: {spec['query']}")
        return hits, learnings

    async def report(
        self,
        plan: str,
        previous: list[Learnings],
        hits_by_id: dict[str, Hit],
        passages: dict[str, list[str]],
    ) -> ResearchResult:
        await self.progress("report", SEARCH_DONE, "Writing the report")
        numbers: dict[str, int] = {}
        learnings: list[tuple[str, str, list[int]]] = []
        followups: list[str] = []
        for item in previous:
            for learning in item["learnings"]:
                cites = []
                for sid in learning["sources"]:
                    if sid in hits_by_id:
                        cites.append(numbers.setdefault(sid, len(numbers) + 1))
                learnings.append((item["query"], learning["text"], cites))
            followups.extend(f for f in item["followups"] if f not in followups)
        sources = [
            NumberedSource(n=n, id=sid, title=hits_by_id[sid]["title"], url=hits_by_id[sid]["url"])
            for sid, n in numbers.items()
        ]
        job = ReportJob(
            question=self.question,
            plan=plan,
            language=self.language,
            learnings=learnings,
            sources=sources,
            followups=followups,
        )
        await self.ctx.output("\n---\n\n")
        body, cited = await self.ai.report(job, self._stream)
        if not body.endswith("\n"):
            body += "\n"
            await self.ctx.output("\n")
        checked = check_citations(body, cited, passages)
        gap = "" if body.endswith("\n\n") else "\n"
        note = f"{gap}> {checked.summary}\n"
        await self.ctx.output(note)
        listing = "\n" + sources_section(cited) if cited else ""
        if listing:
            await self.ctx.output(listing)
        result = ResearchResult(
            report=checked.body + note + listing,
            sources=[SourceRef(id=s["id"], title=s["title"], url=s["url"]) for s in cited],
            citations=checked.claims,
            citation_support=checked.support,
        )
        await self.ctx.save_checkpoint("report", result.model_dump(mode="json"))
        await self.progress("report", 100, "Report complete")
        return result

    async def _stream(self, text: str) -> None:
        if text:
            await self.ctx.output(text)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The most telling leaf of an exception group: our own errors first, then any other."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for kind in (DeepResearchError, Exception, BaseException):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    return group


def _learnings_from_json(value: dict[str, Any]) -> Learnings:
    return Learnings(
        query=str(value["query"]),
        learnings=[
            {"text": str(item["text"]), "sources": [str(s) for s in item["sources"]]}
            for item in value.get("learnings", [])
        ],
        followups=[str(f) for f in value.get("followups", [])],
    )


def _new_queries(specs: list[QuerySpec], previous: list[Learnings]) -> list[QuerySpec]:
    """`specs` without the queries earlier rounds searched (same words, any case or spacing)."""
    asked = {normalise_space(item["query"]).lower() for item in previous}
    out: list[QuerySpec] = []
    for spec in specs:
        key = normalise_space(spec["query"]).lower()
        if key and key not in asked:
            asked.add(key)
            out.append(spec)
    return out


def _learnings_text(learnings: Learnings, hits: list[Hit], *, markdown: bool) -> str:
    """Learnings of one query for the output stream, cited against that query's results.

    `markdown`: the learnings are Markdown already (an LLM's), not text quoted from sources.
    """
    local = {hit["id"]: i for i, hit in enumerate(hits, 1)}
    lines = [f"\n### Learnings: {escape(learnings['query'])}\n"]
    for item in learnings["learnings"]:
        cites = "".join(f"[{local[s]}]" for s in item["sources"] if s in local)
        text = item["text"] if markdown else escape(item["text"])
        lines.append(f"- {text} {cites}".rstrip())
    if not learnings["learnings"]:
        lines.append("- Nothing relevant found.")
    cited = sorted(
        {local[s] for item in learnings["learnings"] for s in item["sources"] if s in local}
    )
    if cited:
        lines.append("")
        lines.extend(
            f"[{n}] {escape(hits[n - 1]['title'])} — `{hits[n - 1]['url']}`" for n in cited
        )
    return "\n".join(lines) + "\n"
