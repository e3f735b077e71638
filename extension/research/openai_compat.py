"""`openai-compatible` writer: streaming chat completions over httpx.

Works with any server that speaks OpenAI's `POST {base_url}/chat/completions` with
`stream: true` (Server-Sent Events): OpenAI, Ollama, vLLM, llama.cpp's server, LM Studio.
`thinking_model` writes the plan and the report, `task_model` the queries and learnings; both
default to `model`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from httpx_sse import SSEError, aconnect_sse

from ..errors import BadRequest, ResearchError
from ..models import AISettings
from .base import AIProvider, Emit, Hit, Learning, Learnings, NumberedSource, QuerySpec, ReportJob
from .citation_check import cited_numbers
from .citations import strip_citations
from .httpclient import check_base_url, endpoint, make_client, raise_for_status, with_retries
from .prompts import learnings_prompt, plan_prompt, queries_prompt, report_prompt, system_prompt

_THINK_RE = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
STREAM_FLUSH_CHARS = 80


class OpenAICompatible(AIProvider):
    """An LLM behind an OpenAI-compatible chat-completions endpoint."""

    name = "openai-compatible"

    def __init__(self, settings: AISettings, options: Any) -> None:
        super().__init__(settings, options)
        self.endpoint = endpoint(settings.base_url, settings.api_key)
        self.base_url = self.endpoint.url  # without user-info: used in messages
        self._client: httpx.AsyncClient | None = None
        self.usage: dict[str, int] = {}
        self._usage_supported = True

    @classmethod
    def validate(cls, settings: AISettings) -> None:
        if not settings.model and not (settings.thinking_model and settings.task_model):
            raise BadRequest(
                "ai.model: required for the openai-compatible provider "
                '(e.g. "gpt-4o-mini" for OpenAI or "llama3.1" for Ollama)'
            )
        if not settings.base_url:
            raise BadRequest(
                "ai.base_url: required for the openai-compatible provider (e.g. "
                '"https://api.openai.com/v1" or "http://localhost:11434/v1" for Ollama)'
            )
        check_base_url("ai", settings.base_url, settings.api_key)

    @property
    def thinking_model(self) -> str:
        return self.settings.thinking_model or self.settings.model or ""

    @property
    def task_model(self) -> str:
        return self.settings.task_model or self.settings.model or ""

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------ steps

    async def plan(self, question: str, language: str, emit: Emit) -> str:
        text = await self.chat(self.thinking_model, plan_prompt(question, language))
        return _strip_think(text).strip() + "\n"

    async def queries(
        self, question: str, plan: str, previous: list[Learnings], count: int, language: str
    ) -> list[QuerySpec]:
        prompt = queries_prompt(question, plan, previous, count, language)
        text = _strip_think(await self.chat(self.task_model, prompt))
        return parse_queries(text, count)

    async def learnings(
        self, question: str, spec: QuerySpec, hits: list[Hit], language: str
    ) -> Learnings:
        if not hits:
            return Learnings(query=spec["query"], learnings=[], followups=[])
        prompt = learnings_prompt(question, spec, hits, language)
        text = _strip_think(await self.chat(self.task_model, prompt))
        return parse_learnings(text, spec["query"], hits)

    async def report(self, job: ReportJob, emit: Emit) -> tuple[str, list[NumberedSource]]:
        text = await self.chat(self.thinking_model, report_prompt(job), emit=emit)
        body = _strip_think(text).strip() + "\n"
        numbers = set(cited_numbers(body))  # `[3]` in a code example cites nothing
        cited = [s for s in job.sources if s["n"] in numbers]
        # A model that ignored the citation instructions still owes the reader its sources.
        return body, cited or list(job.sources)

    # ------------------------------------------------------------ transport

    async def chat(self, model: str, prompt: str, *, emit: Emit | None = None) -> str:
        """Stream one chat completion; return its text, passing pieces to `emit` as they come."""
        if self._client is None:
            self._client = make_client(self.options)
        client = self._client
        url = f"{self.base_url}/chat/completions"
        payload: dict[str, Any] = {
            "model": model,
            "messages": [
                {"role": "system", "content": system_prompt()},
                {"role": "user", "content": prompt},
            ],
            "stream": True,
        }
        if self._usage_supported:
            payload["stream_options"] = {"include_usage": True}
        if self.settings.temperature is not None:
            payload["temperature"] = self.settings.temperature
        headers = {"Accept": "text/event-stream", **self.endpoint.headers}

        async def attempt() -> str:
            pieces: list[str] = []
            pending: list[str] = []
            filt = _ThinkFilter()
            async with aconnect_sse(client, "POST", url, json=payload, headers=headers) as source:
                response = source.response
                if response.status_code >= 400:
                    body = (await response.aread()).decode("utf-8", "replace")
                    raise_for_status(
                        response,
                        service=self.base_url,
                        has_key=self.endpoint.has_key,
                        key_field="ai.api_key",
                        body=body,
                        not_found=(
                            f"Model {model!r} was not found at {self.base_url} (HTTP 404): "
                            "check ai.model (an unknown model name?) and ai.base_url "
                            "(it usually ends in /v1)."
                        ),
                    )
                try:
                    async for event in source.aiter_sse():
                        if event.data.strip() == "[DONE]":
                            break
                        piece = self._piece(event.data)
                        if not piece:
                            continue
                        pieces.append(piece)
                        if emit is not None:
                            visible = filt.feed(piece)
                            if visible:
                                pending.append(visible)
                            if sum(map(len, pending)) >= STREAM_FLUSH_CHARS or "\n" in visible:
                                await emit("".join(pending))
                                pending.clear()
                except SSEError:
                    raise ResearchError(
                        f"{self.base_url} did not answer with a stream of Server-Sent Events; "
                        "is ai.base_url an OpenAI-compatible API?"
                    ) from None
            if emit is not None and pending:
                await emit("".join(pending))
            return "".join(pieces)

        try:
            return await with_retries(attempt, options=self.options, service=self.base_url)
        except ResearchError as exc:
            # A few strict servers reject the usage option; ask once more without it.
            if not self._usage_supported or "stream_options" not in exc.message:
                raise
            self._usage_supported = False
            return await self.chat(model, prompt, emit=emit)

    def _piece(self, data: str) -> str:
        try:
            chunk = json.loads(data)
        except ValueError:
            return ""
        if not isinstance(chunk, dict):
            return ""
        if chunk.get("error"):
            raise ResearchError(f"{self.base_url} reported an error while streaming.")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            for k, v in usage.items():
                if isinstance(v, int):
                    self.usage[k] = self.usage.get(k, 0) + v
        choices = chunk.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return ""
        delta = choices[0].get("delta") or choices[0].get("message") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        return content if isinstance(content, str) else ""


class _ThinkFilter:
    """Hides `<think>…</think>` blocks of reasoning models from a token stream."""

    def __init__(self) -> None:
        self.inside = False
        self.buf = ""

    def feed(self, piece: str) -> str:
        self.buf += piece
        out: list[str] = []
        while self.buf:
            if self.inside:
                end = self.buf.find("</think>")
                if end < 0:
                    self.buf = self.buf[-8:]
                    break
                self.buf = self.buf[end + len("</think>") :]
                self.inside = False
            else:
                start = self.buf.find("<think>")
                if start < 0:
                    # Keep a possible partial tag at the end for the next piece.
                    keep = next((i for i in range(1, 7) if "<think>".startswith(self.buf[-i:])), 0)
                    out.append(self.buf[: len(self.buf) - keep] if keep else self.buf)
                    self.buf = self.buf[len(self.buf) - keep :] if keep else ""
                    break
                out.append(self.buf[:start])
                self.buf = self.buf[start + len("<think>") :]
                self.inside = True
        return "".join(out)


def _strip_think(text: str) -> str:
    return _THINK_RE.sub("", text)


_BULLET_RE = re.compile(r"^\s*(?:[-*•+]|\d{1,2}[.)])\s+")


def parse_queries(text: str, count: int) -> list[QuerySpec]:
    """Queries from a JSON answer, or failing that one query per line."""
    specs = _json_queries(text)
    if specs is None:
        specs = []
        for line in text.splitlines():
            line = _BULLET_RE.sub("", line).strip().strip('"').strip()
            if not line or line.startswith(("#", "```", "{", "}", "[", "]")) or len(line) > 300:
                continue
            if line.lower().rstrip(":") in ("queries", "search queries", "here are the queries"):
                continue
            specs.append(QuerySpec(query=line, goal=""))
    seen: set[str] = set()
    out: list[QuerySpec] = []
    for spec in specs:
        key = " ".join(spec["query"].lower().split())
        if key and key not in seen:
            seen.add(key)
            out.append(spec)
    return out[:count]


def _json_queries(text: str) -> list[QuerySpec] | None:
    cleaned = re.sub(r"```(?:json)?", "", text).strip()
    start = min((i for i in (cleaned.find("{"), cleaned.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        data, _ = json.JSONDecoder().raw_decode(cleaned[start:])
    except ValueError:
        return None
    if isinstance(data, dict):
        data = data.get("queries", data.get("items"))
    if not isinstance(data, list):
        return None
    specs: list[QuerySpec] = []
    for item in data:
        if isinstance(item, str) and item.strip():
            specs.append(QuerySpec(query=item.strip(), goal=""))
        elif isinstance(item, dict) and str(item.get("query", "")).strip():
            goal = item.get("goal") or item.get("researchGoal") or ""
            specs.append(QuerySpec(query=str(item["query"]).strip(), goal=str(goal).strip()))
    return specs


def parse_learnings(text: str, query: str, hits: list[Hit]) -> Learnings:
    """Bullets citing [n] (numbers into `hits`), then follow-up questions after their heading."""
    learnings: list[Learning] = []
    followups: list[str] = []
    in_followups = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if re.match(r"^[#*\s]*follow[- ]?up", line, re.IGNORECASE):
            in_followups = True
            continue
        if re.match(r"^#+\s|^learnings:?$", line, re.IGNORECASE):
            continue
        item = _BULLET_RE.sub("", line).strip()
        if not item:
            continue
        if in_followups:
            followups.append(item)
            continue
        clean, numbers = strip_citations(item)
        ids = [hits[n - 1]["id"] for n in numbers if 1 <= n <= len(hits)]
        if clean:
            learnings.append(Learning(text=clean, sources=list(dict.fromkeys(ids))))
    return Learnings(query=query, learnings=learnings, followups=followups[:5])
