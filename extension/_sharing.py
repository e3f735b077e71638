"""How a task manager shares a store with other servers: claims, takeover, remote control.

Only the holder of a task's lease writes it. This mixin of `TaskManager` claims leases before
writing, takes over tasks whose runner is gone, acts on control requests other servers leave
for the tasks it holds, asks the holder elsewhere when a request reaches the wrong server, and
reads tasks it does not hold cheaply (`store.peek`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import BadRequest, Conflict, DeepResearchError, TaskNotFound
from .models import ResearchRequest, Status
from .store.base import TaskState, TaskSummary

if TYPE_CHECKING:
    import logging
    from collections import deque
    from datetime import datetime

    from .events import EventHub
    from .lease import LeaseKeeper
    from .store.base import TaskStore

CONTROL_WAIT_SECONDS = 5.0  # how long a request waits for the server running the task to act
# Paused for a reason that is no user's choice: whoever holds no lease on it resumes it.
# (A task paused by a storage outage keeps its lease while its server lives and retries.)
ORPHANED = ("shutdown", "storage")
# Paused by a worker that cannot read the task's source folders: its owner's server resumes it.
AWAITING_OWNER = "owner"


@dataclass
class Live:
    """In-memory companion of a task this server is running or has queued."""

    state: TaskState
    request: ResearchRequest  # resolved, secrets included: never persisted
    runner: asyncio.Task[None] | None = None
    # "pause", "cancel", "shutdown", "discard" (restart/delete here), "handoff" (another server
    # asked for the task), "lost" (another server took the lease: write nothing more)
    stop_reason: str | None = None


class SharedStoreMixin:
    """Lease-aware claiming, takeover and control of tasks (mixed into `TaskManager`)."""

    if TYPE_CHECKING:
        store: TaskStore
        leases: LeaseKeeper
        events: EventHub
        log: logging.Logger
        auto_resume: bool
        runs_for: str | None
        reads_sources: bool
        max_concurrent_tasks: int
        _live: dict[str, Live]
        _queue: deque[str]
        _unresumable: set[tuple[str, datetime]]
        _stopping: bool

        @property
        def running_count(self) -> int: ...
        def _lock(self, task_id: str) -> asyncio.Lock: ...
        def _stored_request(self, state: TaskState) -> ResearchRequest: ...
        async def _enqueue(
            self, state: TaskState, request: ResearchRequest, *, new_run: bool = False
        ) -> None: ...
        async def _set_status(
            self,
            state: TaskState,
            status: Status,
            *,
            error: str | None = None,
            reason: str | None = None,
        ) -> None: ...
        async def _halt(self, live: Live, reason: str) -> None: ...
        async def _stop_run(self, state: TaskState, reason: str, status: Status) -> None: ...

    async def take_over(self) -> None:
        """Resume tasks whose runner's lease lapsed (crashed or stopped), as capacity allows."""
        if self._stopping:
            return
        room = self.max_concurrent_tasks - self.running_count - len(self._queue)
        if room > 0:
            await self._adopt_orphans(limit=room, why="whose runner stopped")

    async def _adopt_orphans(self, *, limit: int | None, why: str) -> None:
        # The listing is cheap but may lag the event log (a crash between the two writes), so
        # it only picks candidates; the decision is made on the state loaded under the lease.
        candidates = [row for row in await self.store.unfinished() if self._adoptable(row)]
        candidates.sort(key=lambda row: row.created_at)
        taken = 0
        for row in candidates:
            if limit is not None and taken >= limit:
                return
            if await self.leases.holder(row.task_id) is not None:
                continue  # another live server runs it: never touch it
            async with self._lock(row.task_id):
                state = await self._claim(row.task_id)
                if state is None:
                    continue
                if await self._adopt(state, row, why):
                    taken += 1

    def _adoptable(self, row: TaskSummary) -> bool:
        """Whether this manager may take the listed task over (decided again once claimed)."""
        if row.task_id in self.leases.held or (row.task_id, row.updated_at) in self._unresumable:
            return False
        if self.runs_for is not None and row.owner != self.runs_for:
            return False  # another user's task: only its owner's server or a worker runs it
        if row.status.active:
            return True
        return self.auto_resume and row.status is Status.paused and row.paused_by in self._orphaned

    @property
    def _orphaned(self) -> tuple[str, ...]:
        # A worker cannot read users' folders, so tasks it left for their owner stay left.
        return (*ORPHANED, AWAITING_OWNER) if self.reads_sources else ORPHANED

    async def _adopt(self, state: TaskState, row: TaskSummary, why: str) -> bool:
        """Resume (or mark paused) a task just claimed; True if it was queued here."""
        interrupted = state.status.active
        if not (self.auto_resume and (interrupted or state.paused_by in self._orphaned)):
            if interrupted:
                await self._set_status(state, Status.paused, reason="shutdown")
                await self.store.save(state)
            await self._let_go(state.task_id)
            return False
        try:
            request = self._stored_request(state)
        except BadRequest as error:
            # Said once: the next passes skip it until the task changes (another server,
            # configured differently, may still resume it).
            self.log.error("Cannot resume task %s: %s", state.task_id, error.message)
            self._unresumable.add((row.task_id, row.updated_at))
            await self._let_go(state.task_id)
            return False
        if request.search.sources and not self.reads_sources:
            owner = f"{state.owner}'s server" if state.owner else "a user's server"
            message = (
                f"Waiting for {owner}: this task reads the folders in search.sources, which "
                "only a server with that user's files can read. It resumes when that server starts."
            )
            self.log.info("Task %s left for %s (it reads source folders)", state.task_id, owner)
            await self._set_status(state, Status.paused, error=message, reason=AWAITING_OWNER)
            await self.store.save(state)
            await self._let_go(state.task_id)
            return False
        self.log.info("Resuming task %s %s", state.task_id, why)
        await self._enqueue(state, request)
        return True

    async def _resume_claimed(self, task_id: str, request: ResearchRequest | None) -> TaskState:
        """Resume a stopped task under its lease; if another server got there first, attach."""
        claimed = await self._claim(task_id)
        if claimed is None:
            state = await self._read(task_id)
            if state is None:
                raise TaskNotFound(task_id)
            if state.status.active:
                self.log.info("Task %s is resumed by another server; attached", task_id)
                return state
            # Stopped, but its lease is still held: the server that stopped it a moment ago
            # (a pause asked from here, say) has not let go yet. Ask it to, and wait.
            claimed = await self._on_holder(task_id, "release")
            if task_id not in self.leases.held:
                if claimed.status.active:
                    return claimed  # resumed elsewhere meanwhile
                raise Conflict(
                    f"Task {task_id} is held by another server that did not let it go within "
                    f"{CONTROL_WAIT_SECONDS:.0f} s; try again."
                )
        if claimed.status is Status.completed:
            await self._let_go(task_id)
            return claimed
        if request is None:
            live = self._live.get(task_id)
            request = live.request if live else self._stored_request(claimed)
        self.log.info("Resuming task %s from %s", task_id, claimed.status.value)
        await self._enqueue(claimed, request)
        return claimed

    async def _on_holder(self, task_id: str, action: str) -> TaskState:
        """Have the lease holder elsewhere act, or claim the lease if it is free; the state after.

        Returns once the holder acted, once this server holds the lease (free, lapsed, or let
        go on request), or after `CONTROL_WAIT_SECONDS` with the state as it is.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONTROL_WAIT_SECONDS
        asked = False
        while True:
            state = await self._read(task_id)
            if state is None:
                raise TaskNotFound(task_id)
            if asked and (not can_stop(state, action) or loop.time() > deadline):
                return state
            claimed = await self._claim(task_id)
            if claimed is not None:
                return claimed
            if not asked:
                await self.store.request_control(task_id, action)
                asked = True
            await asyncio.sleep(0.05)

    async def _control(self, task_id: str, action: str) -> None:
        """Act on a request another server left for a task this server holds."""
        async with self._lock(task_id):
            if task_id not in self.leases.held:
                return
            live = self._live.get(task_id)
            if live is None:
                await self._let_go(task_id)
                return
            self.log.info("Task %s: %s requested by another server", task_id, action)
            if action == "release":
                if is_running(live):
                    await self._halt(live, "handoff")
                with contextlib.suppress(ValueError):
                    self._queue.remove(task_id)
                self._live.pop(task_id, None)
            elif can_stop(live.state, action):
                status = Status.paused if action == "pause" else Status.cancelled
                await self._stop_run(live.state, action, status)
            if not self._queued_or_running(task_id):
                await self._let_go(task_id)

    async def _lease_lost(self, task_id: str) -> None:
        """Another server took the task over: stop the local run without writing anything."""
        live = self._live.pop(task_id, None)
        with contextlib.suppress(ValueError):
            self._queue.remove(task_id)
        if live is not None and is_running(live):
            live.stop_reason = "lost"
            assert live.runner is not None
            if live.runner is not asyncio.current_task():  # a runner that found out stops itself
                live.runner.cancel()
        self.store.detach(task_id)
        self.events.forget(task_id)

    async def _store_lost(self, task_id: str) -> None:
        """The store refused a write of the task: its lease went to another server."""
        if task_id in self.leases.held or task_id in self._live:
            self.log.warning("Task %s was taken over by another server; stopped here", task_id)
        self.leases.held.discard(task_id)
        await self._lease_lost(task_id)

    async def _claim(self, task_id: str) -> TaskState | None:
        """Take the task's lease and load its state under it; None if another server holds it."""
        was_held = task_id in self.leases.held
        if not await self.leases.acquire(task_id):
            return None
        try:
            state = await self.store.load(task_id)
        except BaseException:
            if not was_held:
                await self.leases.release(task_id)
            raise
        if state is None:
            await self.leases.release(task_id)
            return None
        live = self._live.get(task_id)
        if live is not None:
            live.state = state
        return state

    async def _let_go(self, task_id: str) -> None:
        """Release the lease once this server is done writing the task."""
        if task_id not in self.leases.held:
            return
        with contextlib.suppress(DeepResearchError):
            await self.store.flush()
        await self.leases.release(task_id)
        self.store.detach(task_id)
        self.events.forget(task_id)

    def _owns(self, task_id: str) -> bool:
        return task_id in self.leases.held

    def _queued_or_running(self, task_id: str) -> bool:
        live = self._live.get(task_id)
        return task_id in self._queue or (live is not None and is_running(live))

    async def _read(self, task_id: str) -> TaskState | None:
        """The live state of a task this server holds, else a cheap read of the store."""
        live = self._live.get(task_id)
        if live is not None and task_id in self.leases.held:
            return live.state
        return await self.store.peek(task_id)


def can_stop(state: TaskState, action: str) -> bool:
    if action == "pause":
        return state.status.active
    if action == "cancel":
        return not state.status.terminal
    return True


def stop_conflict(state: TaskState, action: str) -> str:
    if action == "pause":
        return (
            f"Task {state.task_id} is {state.status.value}; only queued or running "
            "tasks can be paused."
        )
    return f"Task {state.task_id} is already {state.status.value}."


def is_running(live: Live) -> bool:
    return live.runner is not None and not live.runner.done()
