"""What one run of a task is made of: its in-memory companion and the context the pipeline sees."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from ..lifecycle import EventType
from ..models import ResearchRequest
from ..research.context import DEFAULT_MAX_SOURCE_FILE_BYTES, JSONValue
from ..store.base import TaskState, TaskStore

Emit = Callable[..., Awaitable[None]]


class StopReason(str, Enum):
    """Why a run in progress is being stopped (what the runner records when it ends)."""

    pause = "pause"  # a user paused it: paused ("user")
    cancel = "cancel"  # a user cancelled it: cancelled
    shutdown = "shutdown"  # this server stops: paused ("shutdown"), resumed by whoever is next
    discard = "discard"  # a restart or delete here takes over the state: record nothing
    handoff = "handoff"  # another server asked for the task: record nothing, let go
    lost = "lost"  # another server took the lease: write nothing more


@dataclass
class Live:
    """In-memory companion of a task this server is running or has queued."""

    state: TaskState
    request: ResearchRequest  # resolved, secrets included: never persisted
    runner: asyncio.Task[None] | None = None
    stop_reason: StopReason | None = None


def is_running(live: Live) -> bool:
    return live.runner is not None and not live.runner.done()


@dataclass(frozen=True)
class RunSettings:
    """What every run of this manager shares: where it reads and how many run at once."""

    root_dir: Path
    cache_dir: Path
    max_concurrent_tasks: int = 2
    max_source_file_bytes: int = DEFAULT_MAX_SOURCE_FILE_BYTES


class RunContext:
    """The `ResearchContext` one run of the pipeline sees."""

    def __init__(self, live: Live, settings: RunSettings, store: TaskStore, emit: Emit) -> None:
        self._live = live
        self._settings = settings
        self._store = store
        self._emit = emit  # `Runner.emit`: records an event of this run

    @property
    def request(self) -> ResearchRequest:
        return self._live.request

    @property
    def root_dir(self) -> Path:
        return self._settings.root_dir

    @property
    def cache_dir(self) -> Path:
        return self._settings.cache_dir

    @property
    def max_source_file_bytes(self) -> int:
        return self._settings.max_source_file_bytes

    async def progress(self, step: str, percentage: int, message: str | None = None) -> None:
        # Percentages never go backwards, even when a resumed run re-reports an earlier unit.
        pct = max(self._live.state.percentage, min(100, max(0, int(percentage))))
        data: dict[str, Any] = {"step": step, "percentage": pct}
        if message:
            data["message"] = message
        await self._emit(self._live, EventType.progress, data, from_pipeline=True)

    async def output(self, text: str) -> None:
        await self._emit(self._live, EventType.output, {"text": text}, from_pipeline=True)

    def checkpoint(self, key: str) -> JSONValue | None:
        return self._live.state.checkpoints.get(key)

    async def save_checkpoint(self, key: str, value: JSONValue) -> None:
        await self._store.save_checkpoint(self._live.state, key, value)
