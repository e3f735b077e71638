"""The background task manager: dedup, queue, runners, pause/resume/cancel, live event fan-out.

Tasks run as asyncio tasks of the server's event loop, never tied to an HTTP request, so a
client that goes away changes nothing. The store persists; this module decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ._sharing import Live, SharedStoreMixin, can_stop, is_running, stop_conflict
from .errors import (
    BadRequest,
    Conflict,
    DeepResearchError,
    LeaseLost,
    MissingCredentials,
    StoreUnavailable,
    TaskNotFound,
)
from .events import EventHub, Idle
from .fingerprint import task_id_for
from .ids import checked_task_id
from .lease import LeaseKeeper
from .models import ResearchRequest, ResearchResult, Status, public_request, validation_message
from .research.context import JSONValue, ResearchPipeline
from .store.base import Event, LeaseRequest, TaskState, TaskStore, utcnow

STOP_GRACE_SECONDS = 5.0

RequestValidator = Callable[[ResearchRequest, Path], None]


class _RunContext:
    """The `ResearchContext` one run of the pipeline sees."""

    def __init__(self, manager: TaskManager, live: Live) -> None:
        self._manager = manager
        self._live = live

    @property
    def request(self) -> ResearchRequest:
        return self._live.request

    @property
    def root_dir(self) -> Path:
        return self._manager.root_dir

    @property
    def cache_dir(self) -> Path:
        return self._manager.cache_dir

    async def progress(self, step: str, percentage: int, message: str | None = None) -> None:
        # Percentages never go backwards, even when a resumed run re-reports an earlier unit.
        pct = max(self._live.state.percentage, min(100, max(0, int(percentage))))
        data: dict[str, Any] = {"step": step, "percentage": pct}
        if message:
            data["message"] = message
        await self._manager._emit(self._live, "progress", data, from_pipeline=True)

    async def output(self, text: str) -> None:
        await self._manager._emit(self._live, "output", {"text": text}, from_pipeline=True)

    def checkpoint(self, key: str) -> JSONValue | None:
        return self._live.state.checkpoints.get(key)

    async def save_checkpoint(self, key: str, value: JSONValue) -> None:
        await self._manager.store.save_checkpoint(self._live.state, key, value)


class TaskManager(SharedStoreMixin):
    """Creates, schedules, runs and controls research tasks on top of a `TaskStore`."""

    def __init__(
        self,
        store: TaskStore,
        pipeline: ResearchPipeline,
        *,
        root_dir: Path,
        cache_dir: Path,
        max_concurrent_tasks: int = 2,
        default_ai: dict[str, Any] | None = None,
        default_search: dict[str, Any] | None = None,
        fingerprint_scope: str = "user",
        validate_request: RequestValidator | None = None,
        on_activity: Callable[[], None] | None = None,
        lease_seconds: float = 30.0,
        log: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.root_dir = root_dir
        self.cache_dir = cache_dir
        self.max_concurrent_tasks = max(1, max_concurrent_tasks)
        self.default_ai = dict(default_ai or {})
        self.default_search = dict(default_search or {})
        self.fingerprint_scope = fingerprint_scope
        self._validate = validate_request
        self._on_activity = on_activity or (lambda: None)
        self.log = log or logging.getLogger(__name__)
        self._live: dict[str, Live] = {}
        # Finished tasks whose last snapshot write failed (their log is complete): rewritten by
        # `retry_storage_paused` once the store takes writes again.
        self._stale_snapshots: dict[str, TaskState] = {}
        self._queue: deque[str] = deque()
        self._id_locks: dict[str, asyncio.Lock] = {}
        self.leases = LeaseKeeper(
            store,
            lease_seconds,
            on_lost=self._lease_lost,
            on_control=self._control,
            on_tick=self.take_over,
            log=self.log,
        )
        # Fencing: the store refuses writes of tasks whose lease another server took since.
        store.writer_id = self.leases.owner
        store.writer_lease_seconds = self.leases.seconds
        store.on_lease_lost = self._store_lost
        self.events = EventHub(store, self.get, self.log, is_local=self._owns)
        self._stopping = False
        self._unresumable: set[tuple[str, datetime]] = set()  # (id, updated_at): said once
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self.auto_resume = True

    # ----------------------------------------------------------------- lifecycle

    async def ensure_started(self, *, auto_resume: bool = True) -> None:
        """Start once; requests that arrive before the server's start hook wait for it."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self._started:
                await self._start(auto_resume=auto_resume)
                self._started = True

    async def _start(self, *, auto_resume: bool) -> None:
        """Open the store, pick up tasks whose runner is gone, then keep leases and take over."""
        self.auto_resume = auto_resume
        await self.store.open()
        await self._adopt_orphans(limit=None, why="after server start")
        self.leases.start()

    async def stop(self) -> None:
        """Pause running tasks cleanly (persisted), then flush and close the store."""
        self._stopping = True
        self._queue.clear()
        runners = []
        for live in list(self._live.values()):
            if live.runner is not None and not live.runner.done():
                live.stop_reason = "shutdown"
                live.runner.cancel()
                runners.append(live.runner)
        if runners:
            await asyncio.wait(runners, timeout=STOP_GRACE_SECONDS)
        with contextlib.suppress(DeepResearchError):
            await self.store.flush()
        # Queued tasks stay queued on disk, lease-free: another server or a worker takes them.
        await self.leases.stop()
        await self.events.close()
        with contextlib.suppress(DeepResearchError):
            await self.store.close()

    @property
    def running_count(self) -> int:
        return sum(1 for live in self._live.values() if is_running(live))

    # ----------------------------------------------------------------- requests

    def resolve_request(self, request: ResearchRequest) -> ResearchRequest:
        """Apply the server's `default_ai` / `default_search` under what the request gave."""
        ai = _merge(request.ai, self.default_ai)
        search = _merge(request.search, self.default_search)
        try:
            return request.model_validate(
                {
                    "query": request.query,
                    "ai": ai,
                    "search": search,
                    "report": request.report,
                    "restart": request.restart,
                },
                strict=False,
            )
        except ValidationError as error:
            raise BadRequest(validation_message(error)) from None

    def task_id_of(self, request: ResearchRequest, user: str | None) -> str:
        owner = user if self.fingerprint_scope == "user" else None
        return task_id_for(request, owner)

    async def submit(self, request: ResearchRequest, user: str | None) -> tuple[TaskState, bool]:
        """Create-or-attach per DESIGN.md's table; returns the task and whether it was created."""
        request = self.resolve_request(request)
        if self._validate is not None:
            self._validate(request, self.root_dir)
        task_id = self.task_id_of(request, user)
        async with self._lock(task_id):
            state = await self._read(task_id)
            if state is None:
                state = TaskState(task_id=task_id, request=public_request(request), owner=user)
                lease = LeaseRequest(self.leases.owner, self.leases.seconds)
                if await self.store.create(state, lease=lease):
                    self.leases.adopt(task_id)
                    self.log.info("Created task %s", task_id)
                    await self._enqueue(state, request, new_run=True)
                    return state, True
                state = await self._read(task_id)
                if state is None:
                    raise StoreUnavailable(f"Task {task_id} exists but cannot be read.")
            if request.restart:
                return await self._restart(state, request), False
            if state.status.active:
                live = self._live.get(task_id)
                if live is not None and request.ai.api_key and not live.request.ai.api_key:
                    live.request = request
                self.log.info("Attached to task %s (%s)", task_id, state.status.value)
            elif state.status is Status.completed:
                self.log.info("Returned completed task %s", task_id)
            else:
                return await self._resume_claimed(task_id, request), False
            return state, False

    async def get(self, task_id: str, user: str | None = None) -> TaskState:
        """The task's current state: the live one if this server runs it, else a cheap read."""
        try:
            checked_task_id(task_id)
        except ValueError as error:
            raise BadRequest(str(error)) from None
        state = await self._read(task_id)
        if state is None or not self._visible(state, user):
            raise TaskNotFound(task_id)
        return state

    async def list_tasks(
        self, user: str | None = None, status: Status | None = None, limit: int | None = None
    ) -> list[TaskState]:
        """Tasks visible to `user`, newest first."""
        rows = [
            row
            for row in await self.store.summaries()
            if (status is None or row.status is status) and self._visible_owner(row.owner, user)
        ]
        rows.sort(key=lambda row: row.created_at, reverse=True)
        states = []
        for row in rows[:limit] if limit is not None else rows:
            state = await self._read(row.task_id)
            if state is not None and (status is None or state.status is status):
                states.append(state)
        return states

    async def pause(self, task_id: str, user: str | None = None) -> TaskState:
        return await self._stop(task_id, user, "pause", Status.paused)

    async def cancel(self, task_id: str, user: str | None = None) -> TaskState:
        return await self._stop(task_id, user, "cancel", Status.cancelled)

    async def _stop(self, task_id: str, user: str | None, action: str, status: Status) -> TaskState:
        state = await self.get(task_id, user)
        async with self._lock(task_id):
            if not can_stop(state, action):
                raise Conflict(stop_conflict(state, action))
            if task_id not in self.leases.held:
                # Another server may run it: ask it, or act here if nobody holds the lease.
                state = await self._on_holder(task_id, action)
                if task_id not in self.leases.held:
                    return state
                if not can_stop(state, action):  # it stopped meanwhile: nothing left to do
                    await self._let_go(task_id)
                    return state
            await self._stop_run(state, action, status)
            if not self._queued_or_running(task_id):
                await self._let_go(task_id)
        return state

    async def resume(self, task_id: str, user: str | None = None) -> TaskState:
        state = await self.get(task_id, user)
        async with self._lock(task_id):
            if state.status not in (Status.paused, Status.failed, Status.cancelled):
                raise Conflict(
                    f"Task {task_id} is {state.status.value}; only paused, failed or "
                    "cancelled tasks can be resumed."
                )
            return await self._resume_claimed(task_id, None)

    async def delete(self, task_id: str, user: str | None = None) -> None:
        state = await self.get(task_id, user)
        async with self._lock(task_id):
            if task_id not in self.leases.held:
                # The runner elsewhere lets go first; if it does not in time, its next lease
                # renewal finds the task gone and it stops on its own.
                await self._on_holder(task_id, "release")
            live = self._live.get(task_id)
            if live is not None:
                await self._halt(live, "discard")
            with contextlib.suppress(ValueError):
                self._queue.remove(task_id)
            self._live.pop(task_id, None)
            self._stale_snapshots.pop(task_id, None)
            self.events.forget(task_id)
            await self.store.delete(task_id)
            self.leases.held.discard(task_id)
            self.log.info("Deleted task %s", state.task_id)
        await self._notify(task_id)

    async def retry_storage_paused(self) -> list[str]:
        """Once the store takes writes again: rewrite stale snapshots, resume storage pauses."""
        for task_id, stale in list(self._stale_snapshots.items()):
            try:
                await self.store.save(stale, durable=True)
            except DeepResearchError:
                break  # still failing; the next round tries again
            self._stale_snapshots.pop(task_id, None)
            self.log.info("Storage is back; snapshot of task %s rewritten", task_id)
        waiting = [
            live
            for live in self._live.values()
            if live.state.status is Status.paused and live.state.paused_by == "storage"
        ]
        resumed = []
        for live in waiting:
            async with self._lock(live.state.task_id):
                if live.state.paused_by == "storage" and live.state.status is Status.paused:
                    try:
                        if not await self.leases.acquire(live.state.task_id):
                            self._live.pop(live.state.task_id, None)  # another server has it
                            continue
                        # A real write of this task's files: the probe that matters.
                        await self.store.save(live.state, durable=True)
                        await self.events.recover()
                    except DeepResearchError:
                        continue
                    self.log.info("Storage is back; resuming task %s", live.state.task_id)
                    await self._enqueue(live.state, live.request)
                    resumed.append(live.state.task_id)
        return resumed

    async def expire(self, max_age_hours: float) -> list[str]:
        """Delete finished tasks older than the limit (never running, queued or paused ones)."""
        if max_age_hours <= 0:
            return []
        removed = await self.store.expire(utcnow() - timedelta(hours=max_age_hours))
        for task_id in removed:
            self.log.info("Expired task %s", task_id)
        return removed

    async def health(self) -> dict[str, Any]:
        """Store facts and task counts by status (one listing of the store, not two)."""
        store = await self.store.health()
        return {
            "status": "ok",
            "store": store,
            "tasks": store["by_status"],
            "running_here": self.running_count,
            "queued_here": len(self._queue),
            "max_concurrent_tasks": self.max_concurrent_tasks,
        }

    # ----------------------------------------------------------------- events

    async def follow(
        self, task_id: str, after: int, *, live: bool = True, closed: asyncio.Event | None = None
    ) -> AsyncIterator[Event | Idle | None]:
        """Durable events with id > `after`, then live ones (see `EventHub.follow`)."""
        async for event in self.events.follow(task_id, after, live=live, closed=closed):
            yield event

    async def wake(self, task_id: str) -> None:
        """Wake followers of a task (e.g. because their client closed)."""
        await self.events.notify(task_id)

    # ----------------------------------------------------------------- running

    async def _enqueue(
        self, state: TaskState, request: ResearchRequest, *, new_run: bool = False
    ) -> None:
        live = self._live.get(state.task_id)
        if live is None:
            live = self._live[state.task_id] = Live(state=state, request=request)
        else:
            live.request = request
            live.state = state
        live.stop_reason = None
        if new_run or state.status is not Status.queued:
            await self._set_status(state, Status.queued)
        if state.task_id not in self._queue:
            self._queue.append(state.task_id)
        try:
            await self.store.save(state)
        except StoreUnavailable as error:
            # Queued all the same: the run meets the failing store, pauses, and is retried.
            self.log.warning("Task %s queued; snapshot not saved: %s", state.task_id, error)
        self._schedule()

    def _schedule(self) -> None:
        while self._queue and not self._stopping:
            if self.running_count >= self.max_concurrent_tasks:
                return
            live = self._live.get(self._queue.popleft())
            if live is None or live.state.status is not Status.queued or is_running(live):
                continue
            live.runner = asyncio.create_task(
                self._run(live), name=f"deepresearch-{live.state.task_id}"
            )

    async def _run(self, live: Live) -> None:
        state = live.state
        try:
            state.attempts += 1
            await self._set_status(state, Status.running)
            await self.store.save(state)
            self._on_activity()
            outcome = await self.pipeline(_RunContext(self, live))
            result = ResearchResult.model_validate(outcome)
            await self._emit(live, "result", result.model_dump(mode="json"))
            # The result must be durable before anyone can see `completed`.
            await self.store.flush()
            await self._set_status(state, Status.completed)
            self.log.info("Completed task %s (attempt %d)", state.task_id, state.attempts)
            try:
                await self.store.save(state, durable=True)
            except StoreUnavailable as error:
                # The result and `completed` are in the event log (the store rebuilds the
                # snapshot from it); a snapshot that cannot be written must not undo them.
                self.log.warning("Task %s completed; snapshot not saved: %s", state.task_id, error)
                self._stale_snapshots[state.task_id] = state
        except asyncio.CancelledError:
            await self._after_cancel(live)
        except LeaseLost:
            # Frozen past the lease (a paused VM, a stopped process): another server resumed
            # the task and owns every write from now on.
            live.stop_reason = "lost"
            await self._store_lost(state.task_id)
        except MissingCredentials as error:
            self.log.warning("Task %s paused: %s", state.task_id, error.message)
            await self._finish_quietly(state, Status.paused, error.message, reason="credentials")
        except StoreUnavailable as error:
            # Not the research's fault: pause, and `retry_storage_paused` resumes it once the
            # store accepts writes again. Finished units stay checkpointed.
            self.log.error("Task %s paused, storage unavailable: %s", state.task_id, error.message)
            await self._finish_quietly(state, Status.paused, error.message, reason="storage")
        except DeepResearchError as error:
            self.log.warning("Task %s failed: %s", state.task_id, error.message)
            await self._finish_quietly(state, Status.failed, error.message)
        except Exception as error:
            self.log.exception("Task %s failed with an internal error", state.task_id)
            await self._finish_quietly(
                state, Status.failed, f"Internal error: {type(error).__name__}: {error}"
            )
        finally:
            self._on_activity()
            if live.runner is asyncio.current_task():
                live.runner = None
            # Paused, failed and cancelled tasks keep their in-memory request (and so any secret)
            # for a later resume; completed ones no longer need it.
            if state.status is Status.completed and self._live.get(state.task_id) is live:
                self._live.pop(state.task_id, None)
            # The run is over: let another server take it, unless this one keeps driving it
            # (restart or delete in progress here, a queued rerun, a storage retry) or lost it.
            keep = live.stop_reason in ("discard", "lost") or state.status is Status.queued
            if not keep and not (state.status is Status.paused and state.paused_by == "storage"):
                await self._let_go(state.task_id)
            self._schedule()

    async def _after_cancel(self, live: Live) -> None:
        reason = live.stop_reason
        state = live.state
        if reason in ("pause", "shutdown"):
            await self._finish_quietly(
                state, Status.paused, reason="user" if reason == "pause" else "shutdown"
            )
            self.log.info("Paused task %s (%s)", state.task_id, reason)
        elif reason == "cancel":
            await self._finish_quietly(state, Status.cancelled)
            self.log.info("Cancelled task %s", state.task_id)
        # "discard": restart or delete; the caller takes over the state.

    async def _finish_quietly(
        self,
        state: TaskState,
        status: Status,
        message: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Record a final status; a store failure here is logged, never raised into the loop."""
        try:
            await self._set_status(state, status, error=message, reason=reason)
            await self.store.save(state, durable=True)
        except LeaseLost:
            await self._store_lost(state.task_id)  # the new holder's state is the truth
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
            await self._notify(state.task_id)

    async def _stop_run(self, state: TaskState, reason: str, status: Status) -> None:
        live = self._live.get(state.task_id)
        if live is not None and is_running(live):
            await self._halt(live, reason)
            return
        with contextlib.suppress(ValueError):
            self._queue.remove(state.task_id)
        await self._set_status(state, status, reason="user" if status is Status.paused else None)
        await self.store.save(state)

    async def _halt(self, live: Live, reason: str) -> None:
        """Cancel a run in progress and wait until its final status is recorded."""
        runner = live.runner
        if runner is None or runner.done():
            return
        live.stop_reason = reason
        runner.cancel()
        await asyncio.wait([runner], timeout=STOP_GRACE_SECONDS)

    async def _restart(self, state: TaskState, request: ResearchRequest) -> TaskState:
        task_id = state.task_id
        if task_id not in self.leases.held:
            state = await self._on_holder(task_id, "release")
            if task_id not in self.leases.held:
                self.log.warning("Task %s: its runner did not let go; not restarted", task_id)
                return state
        live = self._live.get(task_id)
        if live is not None:
            await self._halt(live, "discard")
        with contextlib.suppress(ValueError):
            self._queue.remove(task_id)
        self._live.pop(task_id, None)
        self.events.forget(task_id)
        self._stale_snapshots.pop(state.task_id, None)
        await self.store.reset_run(state)
        self.log.info("Restarting task %s from scratch", task_id)
        await self._enqueue(state, request, new_run=True)
        return state

    async def _set_status(
        self,
        state: TaskState,
        status: Status,
        *,
        error: str | None = None,
        reason: str | None = None,
    ) -> None:
        data: dict[str, Any] = {"status": status.value}
        if error:
            data["error"] = error
        if reason:
            data["reason"] = reason
        live = self._live.get(state.task_id)
        if live is not None and live.state is state:
            await self._emit(live, "status", data)
        else:
            event = await self.store.append(state, "status", data)
            await self.events.published(state, event, keep_recent=False)

    async def _emit(
        self, live: Live, type: str, data: dict[str, Any], *, from_pipeline: bool = False
    ) -> None:
        if from_pipeline and self.events.failure is not None:
            # Events cannot reach the disk: stop the research here (it pauses and is retried)
            # rather than pile up events in memory that no follower may see.
            raise self.events.failure
        event = await self.store.append(live.state, type, data)
        await self.events.published(live.state, event, keep_recent=True)
        self._on_activity()

    # ----------------------------------------------------------------- helpers

    def _stored_request(self, state: TaskState) -> ResearchRequest:
        """Rebuild the resolved request of a stored task; secrets come from configuration."""
        try:
            request = ResearchRequest.model_validate(state.request, strict=False)
        except ValidationError as error:
            raise BadRequest(validation_message(error)) from None
        return self.resolve_request(request)

    def _visible(self, state: TaskState, user: str | None) -> bool:
        return self._visible_owner(state.owner, user)

    def _visible_owner(self, owner: str | None, user: str | None) -> bool:
        # Tasks without an owner (written by the seed app, or created with `shared` scope)
        # belong to everyone who can reach the server.
        return self.fingerprint_scope != "user" or user is None or owner in (None, user)

    def _lock(self, task_id: str) -> asyncio.Lock:
        return self._id_locks.setdefault(task_id, asyncio.Lock())

    async def _notify(self, task_id: str) -> None:
        await self.events.notify(task_id)


def _merge(given: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """Server defaults apply to a section unless the request picked another provider."""
    explicit = given.model_dump(exclude_unset=True)
    if "api_key" in explicit and explicit["api_key"] is not None:
        explicit["api_key"] = explicit["api_key"].get_secret_value()
    provider = explicit.get("provider")
    if provider is not None and provider != defaults.get("provider", provider):
        return explicit
    return {**defaults, **explicit}
