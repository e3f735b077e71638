"""One asyncio lock per task id: every change of a task's status happens under its lock."""

from __future__ import annotations

import asyncio


class TaskLocks:
    """Locks by task id, made on first use (a task's lock lives as long as the manager)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def __call__(self, task_id: str) -> asyncio.Lock:
        return self._locks.setdefault(task_id, asyncio.Lock())
