"""Several real servers on one storage folder, started in parallel, and SSE helpers for them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from dr_testing.servers import ServerProcess

LEASE_SECONDS = 2.0  # short, so takeover tests take seconds
# For tests where a takeover would be wrong: no renewal is that late, however loaded the machine.
STEADY_LEASE_SECONDS = 30.0
SETTINGS = {
    "pipeline": "dr_testing.pipelines:stepped",
    "flush_interval": 0.05,
    "lease_seconds": LEASE_SECONDS,
}


Cluster = Callable[..., list[ServerProcess]]


def start_all(servers: list[ServerProcess]) -> list[ServerProcess]:
    """Start servers concurrently (each takes a couple of seconds); stop them all on failure."""
    with ThreadPoolExecutor(len(servers)) as pool:
        futures = [pool.submit(server.start) for server in servers]
        errors = [f.exception() for f in futures]
    if any(errors):
        stop_all(servers)
        raise next(e for e in errors if e is not None)
    return servers


def stop_all(servers: list[ServerProcess]) -> None:
    with ThreadPoolExecutor(max(1, len(servers))) as pool:
        list(pool.map(lambda server: server.stop(), servers))


def all_events(client: httpx.Client, task_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    """Every stored event of the task's current run: (id, type, data)."""
    with connect_sse(client, "GET", f"tasks/{task_id}/events", params={"follow": "false"}) as src:
        return [(int(e.id), e.event, json.loads(e.data)) for e in src.iter_sse() if e.id]


class Tail(threading.Thread):
    """Follows a task's SSE stream in a thread, recording (id, type, data, arrival time)."""

    def __init__(self, server: ServerProcess, task_id: str, after: int = 0) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.task_id = task_id
        self.after = after
        self.events: list[tuple[int, str, dict[str, Any], float]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with (
                self.server.client(timeout=120) as client,
                connect_sse(
                    client, "GET", f"tasks/{self.task_id}/events", params={"after": self.after}
                ) as source,
            ):
                for sse in source.iter_sse():
                    if sse.id:
                        self.events.append(
                            (int(sse.id), sse.event, json.loads(sse.data), time.monotonic())
                        )
        except BaseException as error:  # reported by the test through `self.error`
            self.error = error

    def wait_until(self, predicate: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise AssertionError(f"tail failed: {self.error!r}")
            if predicate(self.events):
                return
            time.sleep(0.02)
        raise AssertionError(f"tail condition not met within {timeout}s: {self.events[-3:]}")


def log_of(storage: Path, task_id: str) -> list[dict[str, Any]]:
    """The records of a task's event log on disk."""
    path = storage / f"{task_id}.events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]
