"""How a task manager shares a store with other servers: claims, takeover, remote control.

Only the holder of a task's lease writes it. The takeover claims leases before writing, takes
over tasks whose runner is gone (only its user's, in a user's server; none that reads users'
folders, in a headless worker), acts on control requests other servers leave for the tasks it
holds, asks the holder elsewhere when a request reaches the wrong server, and reads tasks it does
not hold cheaply (`store.peek`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..errors import BadRequest, Conflict, LeaseLost, TaskNotFound
from ..lifecycle import PauseReason, Status, allowed
from ..models import ResearchRequest
from ..store.base import TaskState, TaskStore, TaskSummary
from .lease_keeper import LeaseKeeper
from .locks import TaskLocks
from .runner import Runner
from .runs import StopReason, is_running

CONTROL_WAIT_SECONDS = 5.0  # how long a request waits for the server running the task to act
# Paused for a reason that is no user's choice: whoever holds no lease on it resumes it.
# (A task paused by a storage outage keeps its lease while its server lives and retries.)
ORPHANED = (PauseReason.shutdown, PauseReason.storage)


@dataclass(frozen=True)
class TakeoverPolicy:
    """Which orphaned tasks this manager takes over."""

    auto_resume: bool = True  # resume lapsed tasks (else only mark interrupted ones paused)
    runs_for: str | None = None  # only this user's tasks (a user's server); None: anyone's
    reads_sources: bool = True  # False in a headless worker: it cannot read users' folders


def holder_must_act(state: TaskState, action: str) -> bool:
    """Whether a control request still has something to do on a task in this state.

    A release is done only once this server holds the lease, whatever the status.
    """
    return action == "release" or allowed(action, state.status)


class Takeover:
    """Claims, takeover of orphaned tasks, and control requests between servers."""

    def __init__(
        self,
        store: TaskStore,
        leases: LeaseKeeper,
        runner: Runner,
        locks: TaskLocks,
        stored_request: Callable[[TaskState], ResearchRequest],
        policy: TakeoverPolicy,
        log: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.leases = leases
        self.runner = runner
        self.locks = locks
        self.stored_request = stored_request
        self.policy = policy
        self.log = log or logging.getLogger(__name__)
        self._unresumable: set[tuple[str, datetime]] = set()  # (id, updated_at): said once

    # ----------------------------------------------------------------- orphans

    async def take_over(self) -> None:
        """Resume tasks whose runner's lease lapsed (crashed or stopped), as capacity allows."""
        runner = self.runner
        if runner.stopping:
            return
        room = runner.settings.max_concurrent_tasks - runner.running_count - len(runner.queue)
        if room > 0:
            await self.adopt_orphans(limit=room, why="whose runner stopped")

    async def adopt_orphans(self, *, limit: int | None, why: str) -> None:
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
            async with self.locks(row.task_id):
                state = await self.claim(row.task_id)
                if state is None:
                    continue
                if await self._adopt(state, row, why):
                    taken += 1

    def _adoptable(self, row: TaskSummary) -> bool:
        """Whether this manager may take the listed task over (decided again once claimed)."""
        if row.task_id in self.leases.held or (row.task_id, row.updated_at) in self._unresumable:
            return False
        if self.policy.runs_for is not None and row.owner != self.policy.runs_for:
            return False  # another user's task: only its owner's server or a worker runs it
        if row.status.active:
            return True
        return (
            self.policy.auto_resume
            and row.status is Status.paused
            and row.paused_by in self._orphaned
        )

    @property
    def _orphaned(self) -> tuple[PauseReason, ...]:
        # A worker cannot read users' folders, so tasks it left for their owner stay left.
        return (*ORPHANED, PauseReason.owner) if self.policy.reads_sources else ORPHANED

    async def _adopt(self, state: TaskState, row: TaskSummary, why: str) -> bool:
        """Resume (or mark paused) a task just claimed; True if it was queued here."""
        interrupted = state.status.active
        if not (self.policy.auto_resume and (interrupted or state.paused_by in self._orphaned)):
            if interrupted:
                await self.runner.set_status(state, Status.paused, reason=PauseReason.shutdown)
                await self.store.save(state)
            await self.runner.let_go(state.task_id)
            return False
        try:
            request = self.stored_request(state)
        except BadRequest as error:
            # Said once: the next passes skip it until the task changes (another server,
            # configured differently, may still resume it).
            self.log.error("Cannot resume task %s: %s", state.task_id, error.message)
            self._unresumable.add((row.task_id, row.updated_at))
            await self.runner.let_go(state.task_id)
            return False
        if request.search.sources and not self.policy.reads_sources:
            await self._leave_to_owner(state)
            return False
        self.log.info("Resuming task %s %s", state.task_id, why)
        await self.runner.enqueue(state, request)
        return True

    async def _leave_to_owner(self, state: TaskState) -> None:
        owner = f"{state.owner}'s server" if state.owner else "a user's server"
        message = (
            f"Waiting for {owner}: this task reads the folders in search.sources, which "
            "only a server with that user's files can read. It resumes when that server starts."
        )
        self.log.info("Task %s left for %s (it reads source folders)", state.task_id, owner)
        await self.runner.set_status(state, Status.paused, error=message, reason=PauseReason.owner)
        await self.store.save(state)
        await self.runner.let_go(state.task_id)

    # ----------------------------------------------------------------- resuming

    async def resume_claimed(self, task_id: str, request: ResearchRequest | None) -> TaskState:
        """Resume a stopped task under its lease; if another server got there first, attach."""
        claimed = await self.claim(task_id)
        if claimed is None:
            state = await self.read(task_id)
            if state is None:
                raise TaskNotFound(task_id)
            if state.status.active:
                self.log.info("Task %s is resumed by another server; attached", task_id)
                return state
            # Stopped, but its lease is still held: the server that stopped it a moment ago
            # (a pause asked from here, say) has not let go yet. Ask it to, and wait.
            claimed = await self.on_holder(task_id, "release")
            if task_id not in self.leases.held:
                if claimed.status.active:
                    return claimed  # resumed elsewhere meanwhile
                raise Conflict(
                    f"Task {task_id} is held by another server that did not let it go within "
                    f"{CONTROL_WAIT_SECONDS:.0f} s; try again."
                )
        if claimed.status is Status.completed:
            await self.runner.let_go(task_id)
            return claimed
        if request is None:
            live = self.runner.live.get(task_id)
            request = live.request if live else self.stored_request(claimed)
        self.log.info("Resuming task %s from %s", task_id, claimed.status.value)
        try:
            await self.runner.enqueue(claimed, request)
        except LeaseLost:
            # Frozen past the lease just claimed: the server that took the task runs it.
            await self.runner.store_lost(task_id)
            return await self.read(task_id) or claimed
        return claimed

    # ----------------------------------------------------------------- other servers

    async def on_holder(self, task_id: str, action: str) -> TaskState:
        """Have the lease holder elsewhere act, or claim the lease if it is free; the state after.

        Returns once the holder acted, once this server holds the lease (free, lapsed, or let
        go on request), or after `CONTROL_WAIT_SECONDS` with the state as it is.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONTROL_WAIT_SECONDS
        asked = False
        while True:
            state = await self.read(task_id)
            if state is None:
                raise TaskNotFound(task_id)
            if asked and not holder_must_act(state, action):
                return state
            # Tried once more after the deadline: this process may have been the one frozen
            # (SIGSTOP) while the holder's lease lapsed (found by the chaos run on Redis).
            claimed = await self.claim(task_id)
            if claimed is not None:
                return claimed
            if not asked:
                await self.store.request_control(task_id, action)
                asked = True
            elif loop.time() > deadline:
                return state
            await asyncio.sleep(0.05)

    async def control(self, task_id: str, action: str) -> None:
        """Act on a request another server left for a task this server holds."""
        async with self.locks(task_id):
            if task_id not in self.leases.held:
                return
            live = self.runner.live.get(task_id)
            if live is None:
                await self.runner.let_go(task_id)
                return
            self.log.info("Task %s: %s requested by another server", task_id, action)
            if action == "release":
                if is_running(live):
                    await self.runner.halt(live, StopReason.handoff)
                with contextlib.suppress(ValueError):
                    self.runner.queue.remove(task_id)
                self.runner.live.pop(task_id, None)
            elif holder_must_act(live.state, action):
                status = Status.paused if action == "pause" else Status.cancelled
                await self.runner.stop_run(live.state, StopReason(action), status)
            if not self.runner.queued_or_running(task_id):
                await self.runner.let_go(task_id)

    async def claim(self, task_id: str) -> TaskState | None:
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
        live = self.runner.live.get(task_id)
        if live is not None:
            live.state = state
        return state

    async def read(self, task_id: str) -> TaskState | None:
        """The live state of a task this server holds, else a cheap read of the store."""
        return (await self.read_many([task_id]))[task_id]

    async def read_many(self, task_ids: list[str]) -> dict[str, TaskState | None]:
        """`read` of each task, the store's reads in one call."""
        found: dict[str, TaskState | None] = {}
        others = []
        for task_id in task_ids:
            live = self.runner.live.get(task_id)
            if live is not None and task_id in self.leases.held:
                found[task_id] = live.state
            else:
                others.append(task_id)
        if others:
            found.update(await self.store.peek_many(others))
        return found
