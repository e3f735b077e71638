"""Bounded polling helpers for tests (never sleep a fixed time and hope)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, interval: float = 0.02
) -> Any:
    """Await `probe()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


async def wait_status(api: Any, task_id: str, *statuses: str, timeout: float = 20.0) -> dict:
    """Poll `GET tasks/{id}` until its status is one of `statuses`; return the TaskInfo."""

    async def probe() -> dict | None:
        response = await api("GET", "tasks", task_id)
        info = json.loads(response.body)
        return info if info.get("status") in statuses else None

    result: dict = await eventually(probe, timeout=timeout)
    return result


def wait_for(client: Any, task_id: str, *statuses: str, timeout: float = 60) -> Any:
    """Poll `GET tasks/{id}` with a blocking httpx client until its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    info: Any = None
    while time.monotonic() < deadline:
        response = client.get(f"tasks/{task_id}")
        if response.status_code == 503:  # the store is coming back: ask again
            time.sleep(0.05)
            continue
        assert response.status_code == 200, response.text
        info = response.json()
        if info["status"] in statuses:
            return info
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} not {statuses} within {timeout}s: {info}")
