"""Fakes of the research engine tests: an in-memory context and real loopback HTTP servers.

The HTTP fakes are real HTTP/1.1 servers on 127.0.0.1 (stdlib `http.server` in a thread): an
OpenAI-compatible chat-completions endpoint that streams Server-Sent Events in chunks that split
lines and JSON across reads, and a SearXNG `/search?format=json` endpoint.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jupyter_deepresearch.extension.models import ResearchRequest
from jupyter_deepresearch.extension.research import RunOptions
from jupyter_deepresearch.extension.research.context import DEFAULT_MAX_SOURCE_FILE_BYTES

FAST = RunOptions(retries=3, backoff=0.01, max_backoff=0.05, timeout=2.0, connect_timeout=2.0)


class Stop(BaseException):
    """Raised by `MemoryContext` to simulate a crash right after (or instead of) a save."""


@dataclass
class MemoryContext:
    """A `ResearchContext` in memory; checkpoints round-trip through JSON like a real store."""

    request: ResearchRequest
    root_dir: Path
    cache_dir: Path
    max_source_file_bytes: int = DEFAULT_MAX_SOURCE_FILE_BYTES
    checkpoints: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    progress_events: list[tuple[str, int, str | None]] = field(default_factory=list)
    saves: list[str] = field(default_factory=list)
    # Simulated interruptions after this many saves in this attempt: "cancel" cancels the
    # running task (a pause), "crash" raises `Stop` instead of saving (the save is lost).
    stop_after: int | None = None
    stop_how: str = "cancel"
    owner: asyncio.Task[Any] | None = None

    async def progress(self, step: str, percentage: int, message: str | None = None) -> None:
        if self.owner is None:  # the first call comes from the task running the pipeline
            self.owner = asyncio.current_task()
        self.progress_events.append((step, percentage, message))

    async def output(self, text: str) -> None:
        assert isinstance(text, str)
        self.outputs.append(text)

    def checkpoint(self, key: str) -> Any:
        return self.checkpoints.get(key)

    async def save_checkpoint(self, key: str, value: Any) -> None:
        if self.stop_after is not None and len(self.saves) >= self.stop_after:
            if self.stop_how == "crash":
                raise Stop(key)
            # Cancel the task awaiting `run_research`, as the task manager does on pause.
            assert self.owner is not None
            self.owner.cancel()
            await asyncio.sleep(30)  # cancelled long before this ends
            raise AssertionError("cancellation did not reach the pipeline")
        self.checkpoints[key] = json.loads(json.dumps(value))
        self.saves.append(key)

    def resumed(self, **changes: Any) -> MemoryContext:
        """A new attempt of the same run: same checkpoints, fresh event lists."""
        return MemoryContext(
            request=changes.get("request", self.request),
            root_dir=self.root_dir,
            cache_dir=self.cache_dir,
            max_source_file_bytes=self.max_source_file_bytes,
            checkpoints=self.checkpoints,
            stop_after=changes.get("stop_after"),
            stop_how=changes.get("stop_how", "cancel"),
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server:
    """A threading HTTP server on a free loopback port; `url` is its base URL."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


# ------------------------------------------------------------------ OpenAI-compatible fake


class FakeLLM(_Server):
    """Scriptable chat-completions server.

    `statuses` is a queue of error statuses to answer before succeeding (429, 500...);
    `api_key` (if set) is required; model names drive behaviour: `missing` → 404,
    `slow` → no answer for a long time, `trickle` → a very slow stream, `echo-key` → a 400
    whose body repeats the Authorization header, `echo-key-repr` → the same with the header as
    Python shows bytes (`b'Bearer …'`, backslashes doubled). It answers on any path ending in
    `/chat/completions`; each request's `path` and `auth` header are recorded.
    """

    def __init__(self, port: int = 0) -> None:
        super().__init__(_LLMHandler, port)
        self.statuses: list[int] = []
        self.api_key: str | None = None
        self.queries_format = "json"  # or "lines"
        self.answers: dict[str, str] = {}  # scripted answers by kind ("report"...)

    def calls(self, kind: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if kind is None or r["kind"] == kind)


def _kind(prompt: str) -> str:
    if "research plan" in prompt and "Write a short" in prompt:
        return "plan"
    if "Generate up to" in prompt:
        return "queries"
    if "These are the results" in prompt:
        return "learnings"
    if "Write the final report" in prompt:
        return "report"
    return "other"


class _LLMHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def fake(self) -> FakeLLM:
        return self.server.fake  # type: ignore[attr-defined]

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self._json(404, {"error": {"message": "no such route"}})
            return
        prompt = body["messages"][-1]["content"]
        kind = _kind(prompt)
        with self.fake.lock:
            self.fake.requests.append(
                {
                    "kind": kind,
                    "model": body.get("model"),
                    "auth": self.headers.get("Authorization"),
                    "path": self.path,
                }
            )
            status = self.fake.statuses.pop(0) if self.fake.statuses else None
        if status is not None:
            self._json(status, {"error": {"message": f"scripted {status}"}})
            return
        auth = self.headers.get("Authorization")
        if self.fake.api_key is not None and auth != f"Bearer {self.fake.api_key}":
            self._json(401, {"error": {"message": "Incorrect API key provided"}})
            return
        model = body.get("model")
        if model == "missing":
            self._json(404, {"error": {"message": f"model '{model}' not found"}})
            return
        if model == "strict" and "stream_options" in body:
            self._json(400, {"error": {"message": "Unrecognized request argument: stream_options"}})
            return
        if model == "echo-key":
            self._json(400, {"error": {"message": f"bad request with header {auth}"}})
            return
        if model == "echo-key-repr":
            shown = repr((auth or "").encode())
            self._json(400, {"error": {"message": f"Illegal header value {shown}"}})
            return
        if model == "slow":
            time.sleep(3)
            self._json(500, {"error": {"message": "too late"}})
            return
        text = self.fake.answers.get(kind) or _answer(kind, prompt, self.fake.queries_format)
        self._stream(text, model or "", slow=(model == "trickle"))

    def _stream(self, text: str, model: str, *, slow: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = []
        words = re.findall(r"\S+\s*|\s+", text)
        for i in range(0, len(words), 3):
            chunk = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {"content": "".join(words[i : i + 3])}}],
            }
            events.append(f"data: {json.dumps(chunk)}\n\n")
        usage = {
            "prompt_tokens": 11,
            "completion_tokens": len(words),
            "total_tokens": 11 + len(words),
        }
        events.append(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n")
        events.append("data: [DONE]\n\n")
        stream = "".join(events).encode()
        # Write in odd-sized pieces so that lines and JSON objects split across reads.
        try:
            for start in range(0, len(stream), 37):
                piece = stream[start : start + 37]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.flush()
                if slow:
                    time.sleep(0.2)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


def _answer(kind: str, prompt: str, queries_format: str) -> str:
    question = re.search(r"<question>\s*(.*?)\s*</question>", prompt, re.DOTALL)
    q = question.group(1) if question else "the question"
    if kind == "plan":
        return f"<think>let me think</think>## Research plan\n\n1. Find out: {q}\n"
    if kind == "queries":
        count = int(re.search(r"Generate up to (\d+)", prompt).group(1))  # type: ignore[union-attr]
        round_tag = "deeper " if "Earlier queries" in prompt else ""
        queries = [f"{round_tag}{q} aspect {i}" for i in range(1, count + 1)]
        if queries_format == "json":
            return (
                "```json\n"
                + json.dumps(
                    {
                        "queries": [
                            {"query": x, "goal": f"goal {i}"} for i, x in enumerate(queries, 1)
                        ]
                    }
                )
                + "\n```"
            )
        return "Here are the queries:\n" + "\n".join(f"{i}. {x}" for i, x in enumerate(queries, 1))
    if kind == "learnings":
        query = re.search(r"<query>(.*?)</query>", prompt).group(1)  # type: ignore[union-attr]
        return (
            f"- The first result explains {query}. [1]\n"
            f"- Two results agree about {query}. [1][2]\n"
            "Follow-up questions:\n- What else?\n"
        )
    if kind == "report":
        return f"# Report\n\nThe answer to {q} is known [1]. More detail [2].\n"
    return "ok"


# ------------------------------------------------------------------ SearXNG fake


class FakeSearXNG(_Server):
    """`/search?q=…&format=json`; `json_enabled=False` answers 403 like a default instance.

    Each request's `path`, `params` and `auth` header are recorded.
    """

    def __init__(self) -> None:
        super().__init__(_SearXNGHandler)
        self.json_enabled = True
        self.results_per_query = 8


class _SearXNGHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        fake: FakeSearXNG = self.server.fake  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        params = parse_qs(parts.query)
        with fake.lock:
            fake.requests.append(
                {"path": parts.path, "params": params, "auth": self.headers.get("Authorization")}
            )
        if parts.path != "/search":
            self._send(404, "text/html", b"<h1>Not Found</h1>")
            return
        if params.get("format") != ["json"] or not fake.json_enabled:
            self._send(403, "text/html", b"<h1>403 Forbidden</h1>")
            return
        q = params.get("q", [""])[0]
        slug = re.sub(r"\W+", "-", q.lower()).strip("-")
        results = [
            {
                "url": f"https://example.org/{slug}/{i}",
                "title": f"Result {i} about {q}",
                "content": f"Result {i} says something useful about {q}. It has details.",
                "engine": "fake",
            }
            for i in range(1, fake.results_per_query + 1)
        ]
        results.append(dict(results[0]))  # a duplicate URL, as engines often return
        body = json.dumps({"query": q, "number_of_results": len(results), "results": results})
        self._send(200, "application/json", body.encode())

    def _send(self, status: int, ctype: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
