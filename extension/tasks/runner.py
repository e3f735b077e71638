"""Running tasks: the queue, one asyncio task per run, and the statuses a run ends in.

Tasks run as asyncio tasks of the server's event loop, never tied to an HTTP request, so a
client that goes away changes nothing. The runner writes only tasks whose lease this manager
holds; what to run comes from the manager (requests) and the takeover (orphans).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import DeepResearchError, LeaseLost, MissingCredentials, StoreUnavailable
from ..lifecycle import EventType, PauseReason
from ..models import ResearchRequest, ResearchResult, Status
from ..redact import scrub
from ..research.context import ResearchPipeline
from ..store.base import TaskState, TaskStore
from .events import EventHub
from .lease_keeper import LeaseKeeper
from .locks import TaskLocks
from .runs import Live, RunContext, RunSettings, StopReason, is_running

STOP_GRACE_SECONDS = 5.0


class Runner:
    """The queue and the runs of the tasks this manager holds."""

    def __init__(
        self,
        store: TaskStore,
        pipeline: ResearchPipeline,
        events: EventHub,
        leases: LeaseKeeper,
        locks: TaskLocks,
        settings: RunSettings,
        *,
        on_activity: Callable[[], None] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.events = events
        self.leases = leases
        self.locks = locks
        self.settings = settings
        self.on_activity = on_activity or (lambda: None)
        self.log = log or logging.getLogger(__name__)
        self.live: dict[str, Live] = {}
        self.queue: deque[str] = deque()
        # Finished tasks whose last snapshot write failed (their log is complete): rewritten by
        # `StorageRetry` once the store takes writes again.
        self.stale_snapshots: dict[str, TaskState] = {}
        self.stopping = False

    @property
    def running_count(self) -> int:
        return sum(1 for live in self.live.values() if is_running(live))

    def queued_or_running(self, task_id: str) -> bool:
        live = self.live.get(task_id)
        return task_id in self.queue or (live is not None and is_running(live))

    # ----------------------------------------------------------------- queue

    async def enqueue(
        self, state: TaskState, request: ResearchRequest, *, new_run: bool = False
    ) -> None:
        """Queue a task this manager holds; it runs as soon as there is room."""
        live = self.live.get(state.task_id)
        if live is None:
            live = self.live[state.task_id] = Live(state=state, request=request)
        else:
            live.request = request
            live.state = state
        live.stop_reason = None
        if new_run or state.status is not Status.queued:
            await self.set_status(state, Status.queued)
        if state.task_id not in self.queue:
            self.queue.append(state.task_id)
        try:
            await self.store.save(state)
        except StoreUnavailable as error:
            # Queued all the same: the run meets the failing store, pauses, and is retried.
            self.log.warning("Task %s queued; snapshot not saved: %s", state.task_id, error)
        self.schedule()

    def schedule(self) -> None:
        while self.queue and not self.stopping:
            if self.running_count >= self.settings.max_concurrent_tasks:
                return
            live = self.live.get(self.queue.popleft())
            if live is None or live.state.status is not Status.queued or is_running(live):
                continue
            live.runner = asyncio.create_task(
                self._run(live), name=f"deepresearch-{live.state.task_id}"
            )

    def drop(self, task_id: str) -> Live | None:
        """Forget a task here (restart or delete): out of the queue, memory and event window."""
        with contextlib.suppress(ValueError):
            self.queue.remove(task_id)
        self.stale_snapshots.pop(task_id, None)
        self.events.forget(task_id)
        return self.live.pop(task_id, None)

    # ----------------------------------------------------------------- one run

    async def _run(self, live: Live) -> None:
        state = live.state
        try:
            await self._research(live)
        except asyncio.CancelledError:
            await self._after_cancel(live)
        except LeaseLost:
            # Frozen past the lease (a paused VM, a stopped process): another server resumed
            # the task and owns every write from now on.
            live.stop_reason = StopReason.lost
            await self.store_lost(state.task_id)
        except MissingCredentials as error:
            self.log.warning("Task %s paused: %s", state.task_id, error.message)
            await self.finish_quietly(
                state, Status.paused, error.message, reason=PauseReason.credentials
            )
        except StoreUnavailable as error:
            # Not the research's fault: pause, and `StorageRetry` resumes it once the
            # store accepts writes again. Finished units stay checkpointed.
            self.log.error("Task %s paused, storage unavailable: %s", state.task_id, error.message)
            await self.finish_quietly(
                state, Status.paused, error.message, reason=PauseReason.storage
            )
        except DeepResearchError as error:
            self.log.warning("Task %s failed: %s", state.task_id, error.message)
            await self.finish_quietly(state, Status.failed, error.message)
        except Exception as error:
            self.log.exception("Task %s failed with an internal error", state.task_id)
            await self.finish_quietly(
                state, Status.failed, f"Internal error: {type(error).__name__}: {error}"
            )
        finally:
            await self._after_run(live)

    async def _research(self, live: Live) -> None:
        state = live.state
        state.attempts += 1
        await self.set_status(state, Status.running)
        await self.store.save(state)
        self.on_activity()
        outcome = await self.pipeline(RunContext(live, self.settings, self.store, self.emit))
        result = ResearchResult.model_validate(outcome)
        await self.emit(live, EventType.result, result.model_dump(mode="json"))
        # The result must be durable before anyone can see `completed`.
        await self.store.flush()
        await self.set_status(state, Status.completed)
        self.log.info("Completed task %s (attempt %d)", state.task_id, state.attempts)
        try:
            await self.store.save(state, durable=True)
        except StoreUnavailable as error:
            # The result and `completed` are in the event log (the store rebuilds the snapshot
            # from it); a snapshot that cannot be written must not undo them.
            self.log.warning("Task %s completed; snapshot not saved: %s", state.task_id, error)
            self.stale_snapshots[state.task_id] = state

    async def _after_run(self, live: Live) -> None:
        state = live.state
        self.on_activity()
        if live.runner is asyncio.current_task():
            live.runner = None
        # Paused, failed and cancelled tasks keep their in-memory request (and so any secret)
        # for a later resume; completed ones no longer need it.
        if state.status is Status.completed and self.live.get(state.task_id) is live:
            self.live.pop(state.task_id, None)
        # The run is over: let another server take it, unless this one keeps driving it
        # (restart or delete in progress here, a queued rerun, a storage retry) or lost it.
        keep = live.stop_reason in (StopReason.discard, StopReason.lost)
        keep = keep or state.status is Status.queued
        if not keep and not (
            state.status is Status.paused and state.paused_by == PauseReason.storage
        ):
            await self.let_go(state.task_id)
        self.schedule()

    async def _after_cancel(self, live: Live) -> None:
        reason = live.stop_reason
        state = live.state
        if reason in (StopReason.pause, StopReason.shutdown):
            why = PauseReason.user if reason is StopReason.pause else PauseReason.shutdown
            await self.finish_quietly(state, Status.paused, reason=why)
            self.log.info("Paused task %s (%s)", state.task_id, reason.value)
        elif reason is StopReason.cancel:
            await self.finish_quietly(state, Status.cancelled)
            self.log.info("Cancelled task %s", state.task_id)
        # discard, handoff: a restart, delete or another server takes over the state.

    # ----------------------------------------------------------------- stopping runs

    async def halt(self, live: Live, reason: StopReason) -> None:
        """Cancel a run in progress and wait until its final status is recorded."""
        runner = live.runner
        if runner is None or runner.done():
            return
        live.stop_reason = reason
        runner.cancel()
        await asyncio.wait([runner], timeout=STOP_GRACE_SECONDS)

    async def stop_run(self, state: TaskState, reason: StopReason, status: Status) -> None:
        """Pause or cancel a task held here, running or queued."""
        live = self.live.get(state.task_id)
        if live is not None and is_running(live):
            await self.halt(live, reason)
            return
        with contextlib.suppress(ValueError):
            self.queue.remove(state.task_id)
        await self.set_status(
            state, status, reason=PauseReason.user if status is Status.paused else None
        )
        await self.store.save(state)

    async def stop_all(self) -> None:
        """Shutdown: pause every run (persisted); queued tasks stay queued, for anyone."""
        self.stopping = True
        self.queue.clear()
        runners = []
        for live in list(self.live.values()):
            if live.runner is not None and not live.runner.done():
                live.stop_reason = StopReason.shutdown
                live.runner.cancel()
                runners.append(live.runner)
        if runners:
            await asyncio.wait(runners, timeout=STOP_GRACE_SECONDS)

    # ----------------------------------------------------------------- statuses and events

    async def finish_quietly(
        self,
        state: TaskState,
        status: Status,
        message: str | None = None,
        reason: PauseReason | None = None,
    ) -> None:
        """Record a final status; a store failure here is logged, never raised into the loop."""
        message = scrub(message) if message else None
        try:
            await self.set_status(state, status, error=message, reason=reason)
            await self.store.save(state, durable=True)
        except LeaseLost:
            await self.store_lost(state.task_id)  # the new holder's state is the truth
        except DeepResearchError as error:
            self.log.error(
                "Could not record %s for task %s: %s", status.value, state.task_id, error
            )
            if state.status is not status:
                # Keep memory truthful (no runner owns the task any more) even if the disk
                # did not take the status event.
                state.status = status
                state.paused_by = reason if status is Status.paused else None
                state.error = message if status is Status.failed else None
                if message:
                    state.message = message
            await self.events.notify(state.task_id)

    async def set_status(
        self,
        state: TaskState,
        status: Status,
        *,
        error: str | None = None,
        reason: PauseReason | None = None,
    ) -> None:
        data: dict[str, Any] = {"status": status.value}
        if error:
            # Every status text a client, the store or a log may show passes here first.
            data["error"] = scrub(error)
        if reason:
            data["reason"] = reason.value
        live = self.live.get(state.task_id)
        if live is not None and live.state is state:
            await self.emit(live, EventType.status, data)
        else:
            event = await self.store.append(state, EventType.status.value, data)
            await self.events.published(state, event, keep_recent=False)

    async def emit(
        self, live: Live, type: EventType, data: dict[str, Any], *, from_pipeline: bool = False
    ) -> None:
        if from_pipeline and self.events.failure is not None:
            # Events cannot reach the disk: stop the research here (it pauses and is retried)
            # rather than pile up events in memory that no follower may see.
            raise self.events.failure
        event = await self.store.append(live.state, type.value, data)
        await self.events.published(live.state, event, keep_recent=True)
        self.on_activity()

    # ----------------------------------------------------------------- leases

    async def let_go(self, task_id: str) -> None:
        """Release the lease once this server is done writing the task."""
        if task_id not in self.leases.held:
            return
        with contextlib.suppress(DeepResearchError):
            await self.store.flush()
        await self.leases.release(task_id)
        self.store.detach(task_id)
        self.events.forget(task_id)

    async def lease_lost(self, task_id: str) -> None:
        """Another server took the task over: stop the local run without writing anything."""
        live = self.live.pop(task_id, None)
        with contextlib.suppress(ValueError):
            self.queue.remove(task_id)
        if live is not None and is_running(live):
            live.stop_reason = StopReason.lost
            assert live.runner is not None
            if live.runner is not asyncio.current_task():  # a runner that found out stops itself
                live.runner.cancel()
        self.store.detach(task_id)
        self.events.forget(task_id)

    async def store_lost(self, task_id: str) -> None:
        """The store refused a write of the task: its lease went to another server."""
        if task_id in self.leases.held or task_id in self.live:
            self.log.warning("Task %s was taken over by another server; stopped here", task_id)
        self.leases.held.discard(task_id)
        await self.lease_lost(task_id)
