"""The task manager: create-or-attach, reads and control of research tasks.

It composes the parts that do the work (`runner.Runner` runs, `takeover.Takeover` shares the
store with other servers, `upkeep.Upkeep` keeps leases, storage retries and expiry going,
`events.EventHub` streams events) and decides, for each request, which of them acts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ..errors import (
    BadRequest,
    Conflict,
    DeepResearchError,
    LeaseLost,
    StoreUnavailable,
    TaskNotFound,
)
from ..ids import checked_task_id
from ..lifecycle import Action, allowed, conflict_message
from ..models import ResearchRequest, Status, public_request
from ..research.context import DEFAULT_MAX_SOURCE_FILE_BYTES, ResearchPipeline
from ..store.base import Event, LeaseRequest, TaskState, TaskStore
from .events import EventHub, Idle
from .lease_keeper import LeaseKeeper
from .listing import ListQuery, Page, TaskListing
from .locks import TaskLocks
from .requests import RequestPolicy, Requests
from .runner import Runner
from .runs import RunSettings, StopReason
from .storage_retry import StorageRetry
from .takeover import Takeover, TakeoverPolicy
from .upkeep import Upkeep


class TaskManager:
    """Creates, schedules, runs and controls research tasks on top of a `TaskStore`."""

    def __init__(
        self,
        store: TaskStore,
        pipeline: ResearchPipeline,
        *,
        root_dir: Path,
        cache_dir: Path,
        max_concurrent_tasks: int = 2,
        max_source_file_bytes: int = DEFAULT_MAX_SOURCE_FILE_BYTES,
        requests: RequestPolicy | None = None,
        takeover: TakeoverPolicy | None = None,
        lease_seconds: float = 30.0,
        max_task_age_hours: float = 0.0,
        on_activity: Callable[[], None] | None = None,
        warm_listing: bool = False,
        warm_listing_for: str | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.root_dir = root_dir
        self.log = log or logging.getLogger(__name__)
        self.requests = Requests(requests or RequestPolicy(), root_dir)
        self.locks = TaskLocks()
        self.leases = LeaseKeeper(store, lease_seconds, self.log)
        self.events = EventHub(store, self.get, self.log, is_local=self.leases.held.__contains__)
        settings = RunSettings(
            root_dir, cache_dir, max(1, max_concurrent_tasks), max_source_file_bytes
        )
        self.runner = Runner(
            store,
            pipeline,
            self.events,
            self.leases,
            self.locks,
            settings,
            on_activity=on_activity,
            log=self.log,
        )
        self.takeover = Takeover(
            store,
            self.leases,
            self.runner,
            self.locks,
            self.requests.stored_request,
            takeover or TakeoverPolicy(),
            self.log,
        )
        self.listing = TaskListing(store, self.takeover.read_many, self.requests.visible, self.log)
        self._warm_listing = warm_listing
        self._warm_listing_for = warm_listing_for
        self._warming: asyncio.Task[None] | None = None
        self.storage_retry = StorageRetry(self.runner)
        self.upkeep = Upkeep(
            store,
            self.leases,
            self.runner,
            self.takeover,
            self.storage_retry,
            max_task_age_hours=max_task_age_hours,
            log=self.log,
        )
        # Fencing: the store refuses writes of tasks whose lease another server took since.
        store.writer_id = self.leases.owner
        store.writer_lease_seconds = self.leases.seconds
        store.on_lease_lost = self.runner.store_lost
        self._started = False
        self._start_lock: asyncio.Lock | None = None

    # ----------------------------------------------------------------- lifecycle

    async def ensure_started(self) -> None:
        """Start once; requests that arrive before the server's start hook wait for it."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self._started:
                await self.store.open()
                await self.takeover.adopt_orphans(limit=None, why="after server start")
                self.upkeep.start()
                if self._warm_listing:
                    self._warming = asyncio.create_task(
                        self.listing.warm(self._warm_listing_for),
                        name="deepresearch-listing-warm-up",
                    )
                self._started = True

    async def stop(self) -> None:
        """Pause running tasks cleanly (persisted), then flush and close the store."""
        if self._warming is not None:
            self._warming.cancel()
            await asyncio.gather(self._warming, return_exceptions=True)
        await self.runner.stop_all()
        with contextlib.suppress(DeepResearchError):
            await self.store.flush()
        # Queued tasks stay queued on disk, lease-free: another server or a worker takes them.
        await self.upkeep.stop()
        await self.leases.release_all()
        await self.events.close()
        await self.listing.save()  # for the next server's listings
        with contextlib.suppress(DeepResearchError):
            await self.store.close()

    @property
    def max_concurrent_tasks(self) -> int:
        return self.runner.settings.max_concurrent_tasks

    @property
    def running_count(self) -> int:
        return self.runner.running_count

    # ----------------------------------------------------------------- requests

    async def submit(self, request: ResearchRequest, user: str | None) -> tuple[TaskState, bool]:
        """Create-or-attach per DESIGN.md's table; returns the task and whether it was created."""
        request = self.requests.accept(request)
        task_id = self.requests.task_id_of(request, user)
        async with self.locks(task_id):
            state = await self.takeover.read(task_id)
            if state is None:
                created = await self._create(task_id, request, user)
                if created is not None:
                    return created, True
                state = await self.takeover.read(task_id)
                if state is None:
                    raise StoreUnavailable(f"Task {task_id} exists but cannot be read.")
            if request.restart:
                self.requests.check_may_run(request)
                if not state.status.active:
                    await self._check_limits(user, new_task=False)
                return await self._restart(state, request), False
            if state.status.active:
                live = self.runner.live.get(task_id)
                if live is not None and request.ai.api_key and not live.request.ai.api_key:
                    live.request = request
                self.log.info("Attached to task %s (%s)", task_id, state.status.value)
            elif state.status is Status.completed:
                self.log.info("Returned completed task %s", task_id)
            else:
                self.requests.check_may_run(request)
                await self._check_limits(user, new_task=False)
                return await self.takeover.resume_claimed(task_id, request), False
            return state, False

    async def _create(
        self, task_id: str, request: ResearchRequest, user: str | None
    ) -> TaskState | None:
        """Create and queue the task; None if another server created it a moment earlier."""
        self.requests.check_may_run(request)
        await self._check_limits(user, new_task=True)
        state = TaskState(task_id=task_id, request=public_request(request), owner=user)
        lease = LeaseRequest(self.leases.owner, self.leases.seconds)
        if not await self.store.create(state, lease=lease):
            return None
        self.leases.adopt(task_id)
        self.log.info("Created task %s", task_id)
        try:
            await self.runner.enqueue(state, request, new_run=True)
        except LeaseLost:
            # Frozen past the new task's lease before queueing it (found by the chaos run):
            # another server took it over and runs it. It was created all the same.
            await self.runner.store_lost(task_id)
            return await self.takeover.read(task_id) or state
        return state

    async def get(self, task_id: str, user: str | None = None) -> TaskState:
        """The task's current state: the live one if this server runs it, else a cheap read."""
        try:
            checked_task_id(task_id)
        except ValueError as error:
            raise BadRequest(str(error)) from None
        state = await self.takeover.read(task_id)
        if state is None or not self.requests.visible(state.owner, user):
            raise TaskNotFound(task_id)
        return state

    async def list_tasks(self, query: ListQuery) -> Page:
        """A page of the tasks visible to `query.user`, newest first."""
        return await self.listing.page(query)

    # ----------------------------------------------------------------- control

    async def pause(self, task_id: str, user: str | None = None) -> TaskState:
        return await self._stop(task_id, user, Action.pause, Status.paused)

    async def cancel(self, task_id: str, user: str | None = None) -> TaskState:
        return await self._stop(task_id, user, Action.cancel, Status.cancelled)

    async def _stop(
        self, task_id: str, user: str | None, action: Action, status: Status
    ) -> TaskState:
        state = await self.get(task_id, user)
        async with self.locks(task_id):
            if not allowed(action, state.status):
                raise Conflict(conflict_message(action, task_id, state.status))
            if task_id not in self.leases.held:
                # Another server may run it: ask it, or act here if nobody holds the lease.
                state = await self.takeover.on_holder(task_id, action.value)
                if task_id not in self.leases.held:
                    return state
                if not allowed(action, state.status):  # it stopped meanwhile: nothing to do
                    await self.runner.let_go(task_id)
                    return state
            await self.runner.stop_run(state, StopReason(action.value), status)
            if not self.runner.queued_or_running(task_id):
                await self.runner.let_go(task_id)
        return state

    async def resume(self, task_id: str, user: str | None = None) -> TaskState:
        state = await self.get(task_id, user)
        async with self.locks(task_id):
            if not allowed(Action.resume, state.status):
                raise Conflict(conflict_message(Action.resume, task_id, state.status))
            if self.requests.policy.may_run is not None:
                self.requests.check_may_run(self.requests.stored_request(state))
            await self._check_limits(state.owner, new_task=False)
            return await self.takeover.resume_claimed(task_id, None)

    async def delete(self, task_id: str, user: str | None = None) -> None:
        state = await self.get(task_id, user)
        async with self.locks(task_id):
            if task_id not in self.leases.held:
                # The runner elsewhere lets go first; if it does not in time, its next lease
                # renewal finds the task gone and it stops on its own.
                await self.takeover.on_holder(task_id, "release")
            await self._discard_run(task_id)
            await self.store.delete(task_id)
            self.leases.held.discard(task_id)
            self.log.info("Deleted task %s", state.task_id)
        await self.events.notify(task_id)

    async def _restart(self, state: TaskState, request: ResearchRequest) -> TaskState:
        task_id = state.task_id
        if task_id not in self.leases.held:
            state = await self.takeover.on_holder(task_id, "release")
            if task_id not in self.leases.held:
                self.log.warning("Task %s: its runner did not let go; not restarted", task_id)
                return state
        await self._discard_run(task_id)
        await self.store.reset_run(state)
        self.log.info("Restarting task %s from scratch", task_id)
        await self.runner.enqueue(state, request, new_run=True)
        return state

    async def _discard_run(self, task_id: str) -> None:
        """Stop a run here without recording a status (a restart or delete takes over)."""
        live = self.runner.live.get(task_id)
        if live is not None:
            await self.runner.halt(live, StopReason.discard)
        self.runner.drop(task_id)

    # ----------------------------------------------------------------- upkeep, health

    async def take_over(self) -> None:
        """One takeover round (the upkeep runs them; tests call it to be sure one ran)."""
        await self.takeover.take_over()

    async def retry_storage_paused(self) -> list[str]:
        """One storage-retry round; the ids of the tasks it resumed."""
        return await self.storage_retry.retry()

    async def expire(self) -> list[str]:
        """One expiry sweep; the ids of the tasks it deleted."""
        return await self.upkeep.expire()

    async def health(self, user: str | None = None) -> dict[str, Any]:
        """Store facts and counts by status of the tasks `user` sees (one listing of the store).

        No store location: on a hub every user may ask, and where the tasks are is the admin's.
        """
        store = await self.store.health(lambda owner: self.requests.visible(owner, user))
        return {
            "status": "ok",
            "store": store,
            "tasks": store["by_status"],
            "running_here": self.running_count,
            "queued_here": len(self.runner.queue),
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

    async def _check_limits(self, user: str | None, *, new_task: bool) -> None:
        await self.requests.check_limits(
            self.store, user, len(self.runner.queue), new_task=new_task
        )
