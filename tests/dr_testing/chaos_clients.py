"""The clients of the chaos run: submissions (identical ones sent at once to several servers)
and readers that follow a task's SSE stream, reattaching with `Last-Event-ID` after every
broken, cut or deliberately dropped connection.

Both run in threads while faults come and go, and both record what they saw rather than assert:
the test checks the records at the end, against what the store holds.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import connect_sse

from dr_testing.chaos import ChaosLog, Endpoint

TERMINAL = ("completed", "failed", "cancelled")
POST_TIMEOUT = 20.0  # longer than any freeze: a frozen server answers once it is woken
READ_TIMEOUT = 4.0  # a stream silent this long (a frozen server) is dropped and reattached


@dataclass
class Outcome:
    """One POST's answer: the status code and task id, or the transport error."""

    server: str
    code: int | None
    task_id: str | None
    error: str | None = None


@dataclass
class Query:
    """A request of the run and every answer it got."""

    body: dict[str, Any]
    units: int | None  # scripted tasks: their unit count; None for real offline research
    outcomes: list[Outcome] = field(default_factory=list)
    in_flight: bool = False

    @property
    def task_id(self) -> str | None:
        return next((o.task_id for o in self.outcomes if o.task_id), None)


async def _post_all(endpoints: list[Endpoint], body: dict[str, Any]) -> list[Outcome]:
    """POST the same body to every endpoint at the same moment."""

    async def one(endpoint: Endpoint, client: httpx.AsyncClient) -> Outcome:
        try:
            response = await client.post(
                f"{endpoint.url}tasks", json=body, headers=endpoint.headers
            )
        except httpx.HTTPError as error:
            return Outcome(endpoint.name, None, None, type(error).__name__)
        task_id = response.json().get("task_id") if response.status_code in (200, 201) else None
        return Outcome(endpoint.name, response.status_code, task_id)

    async with httpx.AsyncClient(timeout=POST_TIMEOUT) as client:
        return list(await asyncio.gather(*(one(endpoint, client) for endpoint in endpoints)))


class Submissions:
    """Sends requests in background threads; a request no server took is sent again later."""

    def __init__(
        self,
        endpoints: Callable[[], list[Endpoint]],
        log: ChaosLog,
        on_task: Callable[[str], None],
    ) -> None:
        self.endpoints = endpoints
        self.log = log
        self.on_task = on_task
        self.queries: dict[str, Query] = {}
        self.pool = ThreadPoolExecutor(8, thread_name_prefix="chaos-post")
        self.futures: list[Future[None]] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()

    def add(self, body: dict[str, Any], units: int | None) -> None:
        self.queries[body["query"]] = Query(body, units)

    def submit(self, query: str, copies: int, rng: random.Random) -> None:
        """POST `copies` identical requests at once, spread over the servers that answer."""
        record = self.queries[query]
        with self._lock:
            if record.in_flight:
                return
            record.in_flight = True
        available = self.endpoints()
        rng.shuffle(available)
        targets = [available[i % len(available)] for i in range(copies)] if available else []
        self.futures.append(self.pool.submit(self._send, record, targets))

    def _send(self, record: Query, targets: list[Endpoint]) -> None:
        query = record.body["query"]
        try:
            outcomes = asyncio.run(_post_all(targets, record.body)) if targets else []
            with self._lock:
                known = record.task_id
                record.outcomes.extend(outcomes)
            codes = " ".join(f"{o.server}:{o.code or o.error}" for o in outcomes) or "no server"
            self.log(f"POST {query!r} x{len(targets)}: {codes}")
            for outcome in outcomes:
                if outcome.code not in (200, 201, 503, None):
                    self.problems.append(f"POST {query!r} to {outcome.server}: {outcome.code}")
            if known is None and record.task_id is not None:
                self.on_task(record.task_id)
        finally:
            record.in_flight = False

    def pending(self) -> list[str]:
        """Queries no server has answered yet with a task (all failed, or none was up)."""
        return [q for q, record in self.queries.items() if record.task_id is None]

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for future in list(self.futures):
            future.result(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class Reader(threading.Thread):
    """Follows one task to its end, from whichever servers answer, resuming after the last id.

    Every connection must continue exactly after the last id received (no gap, no duplicate);
    `drop` is the chance, after each event, of hanging up on purpose and reattaching elsewhere.
    """

    def __init__(
        self,
        task_id: str,
        endpoints: Callable[[], list[Endpoint]],
        rng: random.Random,
        stop: threading.Event,
        drop: float = 0.08,
    ) -> None:
        super().__init__(daemon=True, name=f"chaos-read-{task_id[:8]}")
        self.task_id = task_id
        self.endpoints = endpoints
        self.rng = rng
        self.stop = stop
        self.drop = drop
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self.connections = 0
        self.errors = 0
        self.ended = False  # saw the terminal status
        self.problems: list[str] = []

    @property
    def last(self) -> int:
        return self.events[-1][0] if self.events else 0

    def run(self) -> None:
        timeout = httpx.Timeout(5.0, read=READ_TIMEOUT)
        while not self.ended and not self.stop.is_set():
            available = self.endpoints()
            if not available:
                time.sleep(0.1)
                continue
            endpoint = self.rng.choice(available)
            try:
                with httpx.Client(headers=endpoint.headers, timeout=timeout) as client:
                    self._attach(client, endpoint)
            except (httpx.HTTPError, json.JSONDecodeError, ValueError):
                # A killed, frozen or restarting server, or a stream cut mid-event.
                self.errors += 1
                time.sleep(0.05)
            except Exception as error:  # recorded for the test, never lost in a thread
                self.problems.append(f"reader failed: {error!r}")
                return

    def _attach(self, client: httpx.Client, endpoint: Endpoint) -> None:
        headers = {"Last-Event-ID": str(self.last)} if self.events else {}
        url = f"{endpoint.url}tasks/{self.task_id}/events"
        with connect_sse(client, "GET", url, headers=headers) as source:
            self.connections += 1
            code = source.response.status_code
            if code == 503:  # the store is coming back
                time.sleep(0.2)
                return
            if code == 204:
                if not self.ended:
                    self.problems.append(
                        f"{endpoint.name} answered 204 after id {self.last}, before any "
                        "terminal status reached this reader"
                    )
                    self.ended = True
                return
            if code != 200:
                self.problems.append(f"{endpoint.name} answered {code} for the event stream")
                time.sleep(0.2)
                return
            for sse in source.iter_sse():
                if not sse.id:
                    continue
                event_id = int(sse.id)
                if event_id != self.last + 1:
                    self.problems.append(
                        f"{endpoint.name} sent id {event_id} after Last-Event-ID {self.last}"
                    )
                    if event_id <= self.last:
                        continue  # a duplicate: keep the record in order
                data = json.loads(sse.data)
                self.events.append((event_id, sse.event, data))
                if sse.event == "status" and data.get("status") in TERMINAL:
                    self.ended = True
                    return
                if self.stop.is_set() or self.rng.random() < self.drop:
                    return  # hang up; the loop reattaches on a random server
