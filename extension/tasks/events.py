"""Fan-out of task events to followers, releasing only events that are already durable.

An event a client has seen must keep its id forever, even if the server dies a moment later, so
followers receive an event only once the store has it on disk. A group commit keeps that cheap:
one flush covers every event appended while the previous flush ran, so latency is about one
fsync and throughput does not depend on it.

A task another server runs has no local appends to wake its followers: one watcher per such
task waits on `store.wait_changed` (polling or a blocking read, by backend) while it is followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from ..errors import DeepResearchError
from ..store.base import Event, TaskState, TaskStore


class Idle:
    """Yielded by `follow` when it has sent everything available and is about to wait."""


IDLE = Idle()
RECENT_EVENTS = 4096  # per task, served to followers without touching the store
COMMIT_RETRY_SECONDS = 0.5
STORED_WAIT_SECONDS = 2.0  # how long `follow=false` waits for the newest events to commit


class EventHub:
    """Publishes appended events, commits them in groups, and streams them to followers."""

    keepalive_seconds = 15.0

    def __init__(
        self,
        store: TaskStore,
        get_state: Callable[[str], Awaitable[TaskState]],
        log: logging.Logger | None = None,
        is_local: Callable[[str], bool] | None = None,
    ) -> None:
        self.store = store
        self._get_state = get_state
        self._is_local = is_local or (lambda task_id: True)
        self._followers: dict[str, int] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self.log = log or logging.getLogger(__name__)
        self._conditions: dict[str, asyncio.Condition] = {}
        self._recent: dict[str, deque[Event]] = {}
        self._undurable: dict[str, int] = {}  # task id -> last appended id not yet on disk
        self._durable_upto: dict[str, int] = {}  # task id -> last id on disk, while some are not
        self._committer: asyncio.Task[None] | None = None
        # The store's error while the last commit failed; the manager pauses research on it.
        self.failure: DeepResearchError | None = None

    async def published(self, state: TaskState, event: Event, *, keep_recent: bool) -> None:
        """Record an event just appended to the store; followers get it once it is durable."""
        if keep_recent:
            recent = self._recent.setdefault(state.task_id, deque(maxlen=RECENT_EVENTS))
            if recent and recent[-1].id != event.id - 1:
                recent.clear()  # keep the window contiguous
            recent.append(event)
        # Events appended before this one were committed (or predate this server).
        self._durable_upto.setdefault(state.task_id, event.id - 1)
        self._undurable[state.task_id] = event.id
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit(), name="deepresearch-commit")

    def forget(self, task_id: str) -> None:
        """Drop the in-memory window of a task (a new run starts, or it was deleted)."""
        self._recent.pop(task_id, None)

    async def notify(self, task_id: str) -> None:
        """Wake the followers of a task."""
        condition = self._conditions.get(task_id)
        if condition is not None:
            async with condition:
                condition.notify_all()

    def _watch(self, task_id: str, after: int) -> None:
        """Make sure a watcher wakes this task's followers when another server writes it."""
        if self._is_local(task_id):
            return
        watcher = self._watchers.get(task_id)
        if watcher is None or watcher.done():
            self._watchers[task_id] = asyncio.create_task(
                self._watch_loop(task_id, after), name=f"deepresearch-tail-{task_id}"
            )

    async def _watch_loop(self, task_id: str, after: int) -> None:
        seen = after
        while self._followers.get(task_id) and not self._is_local(task_id):
            try:
                if not await self.store.wait_changed(task_id, seen, self.keepalive_seconds):
                    continue
                seen = (await self._get_state(task_id)).last_event_id
            except DeepResearchError:
                await asyncio.sleep(COMMIT_RETRY_SECONDS)  # deleted, or the store is down
            await self.notify(task_id)

    async def close(self) -> None:
        """Give the committer a moment to finish, then stop it."""
        for watcher in self._watchers.values():
            watcher.cancel()
        if self._committer is not None:
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._committer), 5.0)
            self._committer.cancel()

    async def recover(self) -> None:
        """Flush now; on success the store counts as healthy again (raises if it is not)."""
        await self.store.flush()
        self.failure = None

    def durable_limit(self, state: TaskState) -> int:
        """The highest event id of the task that followers may receive now."""
        upto = self._durable_upto.get(state.task_id)
        return state.last_event_id if upto is None else min(upto, state.last_event_id)

    async def _commit(self) -> None:
        while self._undurable:
            batch = dict(self._undurable)
            try:
                await self.store.flush()
            except DeepResearchError as error:
                if self.failure is None:
                    self.log.warning("deepresearch: events not yet durable, retrying: %s", error)
                self.failure = error
                await asyncio.sleep(COMMIT_RETRY_SECONDS)
                continue
            self.failure = None
            for task_id, last in batch.items():
                if self._undurable.get(task_id) == last:
                    del self._undurable[task_id]
                    self._durable_upto.pop(task_id, None)
                else:
                    self._durable_upto[task_id] = last
                await self.notify(task_id)

    async def follow(
        self,
        task_id: str,
        after: int,
        *,
        live: bool = True,
        closed: asyncio.Event | None = None,
    ) -> AsyncIterator[Event | Idle | None]:
        """Durable events with id > `after`, then live ones until the task is terminal.

        Yields `IDLE` when caught up (the moment to flush what was written), None after
        `keepalive_seconds` without news (send a keepalive); stops when `closed` is set.
        """
        self._followers[task_id] = self._followers.get(task_id, 0) + 1
        try:
            async for event in self._follow(task_id, after, live=live, closed=closed):
                yield event
        finally:
            self._followers[task_id] -= 1
            if not self._followers[task_id]:
                del self._followers[task_id]

    async def _follow(
        self, task_id: str, after: int, *, live: bool, closed: asyncio.Event | None
    ) -> AsyncIterator[Event | Idle | None]:
        last = after
        condition = self._conditions.setdefault(task_id, asyncio.Condition())
        # Without `live`, send everything recorded when the request came (waiting the moment it
        # takes to commit the newest events), then stop.
        target = (await self._get_state(task_id)).last_event_id
        loop = asyncio.get_running_loop()
        give_up = loop.time() + STORED_WAIT_SECONDS
        while True:
            async with condition:
                state = await self._get_state(task_id)
                last = max(last, state.run_first_event_id - 1)
                limit = self.durable_limit(state)
                pending = last < limit
                finished = state.status.terminal and limit >= state.last_event_id
            if pending:
                async for event in self._events_after(task_id, last, limit):
                    if event.id > limit:
                        break
                    yield event
                    last = event.id
                continue
            if finished or (not live and last >= target):
                return
            if closed is not None and closed.is_set():
                return
            if not live and loop.time() > give_up:
                # The newest events were being committed; a store that cannot write must not
                # hang the request: what is durable has been sent.
                return
            yield IDLE
            self._watch(task_id, last)
            async with condition:
                if self.durable_limit(await self._get_state(task_id)) > last:
                    continue
                wait = self.keepalive_seconds if live else max(0.0, give_up - loop.time())
                try:
                    await asyncio.wait_for(condition.wait(), wait)
                except asyncio.TimeoutError:
                    if live:
                        yield None
            if closed is not None and closed.is_set():
                return

    async def _events_after(self, task_id: str, after: int, limit: int) -> AsyncIterator[Event]:
        recent = self._recent.get(task_id)
        if recent and recent[0].id <= after + 1:
            for event in list(recent):
                if event.id > after:
                    yield event
                    after = event.id
            if after >= limit:
                return
        # Older than the window, or written by another server: from the store.
        async for event in self.store.events(task_id, after):
            yield event
