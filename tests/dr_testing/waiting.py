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
