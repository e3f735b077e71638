"""The files store's calls that serve other servers too: leases, control requests, a task's
events, and waiting for more (`FileTaskStore` inherits them).

Leases and control requests are files beside the task's (`_lease`); events come from the log
(`_journal`) in batches, then from this store's buffer; a follower waits on inotify and polls.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from . import _folder as folder
from . import _journal as journal
from . import _lease as leases
from ._recovery import signature
from ._watch import FolderWatch
from .base import CONTROL_ACTIONS, Event, TaskState, TaskStore
from .seed_format import synthesize_events

_READ_BUDGET = 256 * 1024  # bytes of log read per worker-thread hop while streaming events
_FIRST_READ = 16 * 1024  # the first hop is small: the first event comes fast and costs little
TAIL_POLL_SECONDS = 0.2  # how often a follower of another server's task looks for news
WATCHED_POLL_SECONDS = 1.0  # the same while inotify watches the folder (NFS clients' writes)
_T = TypeVar("_T")


class Entry:
    """Writer bookkeeping of one task this store writes: lock, unflushed lines, log tail."""

    def __init__(self, state: TaskState, lock: asyncio.Lock) -> None:
        self.state = state
        self.lock = lock  # shared by every entry of the task: one writer of its files at a time
        self.pending: list[tuple[Event | None, bytes]] = []
        self.tail: journal.Tail | None = None  # None: the log must be (re)opened and checked
        self.logged_attempts = -1  # forces one metadata record on the first save
        self.prelude: list[Event] | None = None  # events of a task without a log (seed files)


class SharedFileCalls(TaskStore):
    """Part of `FileTaskStore`: what it needs of the store is declared here."""

    directory: Path
    _entries: dict[str, Entry]
    _watch: FolderWatch

    @abc.abstractmethod
    def _paths(self, task_id: str) -> folder.TaskPaths: ...

    @abc.abstractmethod
    async def _io(self, fn: Callable[..., _T], *args: Any, writes: bool = True) -> _T: ...

    async def events(self, task_id: str, after: int = 0) -> AsyncIterator[Event]:
        """This run's events with id > `after`: from disk in batches, then unflushed ones."""
        paths = self._paths(task_id)
        try:
            located = await self._io(journal.locate, paths.log, paths.idx, after, writes=False)
        except journal.LogCorrupt:
            located = None
        if located is None:
            # No log: a seed task (or a damaged log) replays what its snapshot holds.
            async for event in self._events_without_log(task_id, after):
                yield event
            return
        run_first, offset = located
        entry = self._entries.get(task_id)
        known = entry.state.last_event_id if entry else 0  # appended here before this call
        last, stalls, budget = after, 0, _FIRST_READ
        while True:
            before, at_end = last, False
            while not at_end:
                batch, offset, at_end = await self._io(
                    journal.read_events, paths.log, offset, last, budget, writes=False
                )
                budget = min(_READ_BUDGET, budget * 4)
                for event in batch:
                    yield event
                    last = event.id
            entry = self._entries.get(task_id)
            pending = [ev for ev, _ in entry.pending if ev and ev.id > last] if entry else []
            if pending and pending[0].id == max(last, run_first - 1) + 1:
                for event in pending:
                    yield event
                return
            # Short of what was appended before the call: a flush moved it to disk while we
            # read, so read on from where we were (a second empty pass means a new run began).
            stalls = stalls + 1 if last == before else 0
            if last >= known or stalls > 1:
                return

    async def _events_without_log(self, task_id: str, after: int) -> AsyncIterator[Event]:
        entry = self._entries.get(task_id)
        if entry is not None:
            earlier = entry.prelude or []
            pending = [ev for ev, _ in entry.pending if ev]
        else:
            state = await self.load(task_id)
            earlier, pending = (synthesize_events(state) if state else []), []
        for event in [*earlier, *pending]:
            if event.id > after:
                yield event

    # Leases, control requests, tailing

    async def acquire_lease(self, task_id: str, owner: str, seconds: float) -> bool:
        """Take the lease under the folder lock if it is free, lapsed or ours."""
        self._paths(task_id)
        return await self._io(leases.acquire, self.directory, task_id, owner, seconds)

    async def renew_leases(self, task_ids: list[str], owner: str, seconds: float) -> set[str]:
        """Extend our leases in one pass under the folder lock; the ids still held."""
        return await self._io(leases.renew, self.directory, list(task_ids), owner, seconds)

    async def release_lease(self, task_id: str, owner: str) -> None:
        """Remove our lease file."""
        self._paths(task_id)
        await self._io(leases.release, self.directory, task_id, owner)

    async def lease_holder(self, task_id: str) -> str | None:
        """The owner named by a lease file that has not lapsed."""
        self._paths(task_id)
        return await self._io(leases.holder, self.directory, task_id, writes=False)

    async def request_control(self, task_id: str, action: str) -> None:
        """Write `{id}.control` for the holder's control loop."""
        if action not in CONTROL_ACTIONS:
            raise ValueError(f"unknown control action {action!r}")
        self._paths(task_id)
        await self._io(leases.request, self.directory, task_id, action)

    async def take_controls(self, task_ids: list[str]) -> dict[str, str]:
        """Take pending control files of these tasks (one rename each, no lock)."""
        return await self._io(leases.take, self.directory, list(task_ids))

    async def wait_changed(self, task_id: str, after: int, timeout: float) -> bool:
        """Wait until the index or snapshot changes (inotify, and a `stat` of each per poll)."""
        paths = self._paths(task_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Watching starts before the first look, so a change in between still wakes us.
        with self._watch.watching(task_id) as woken:
            durable = await self._io(leases.durable_last_id, paths.idx, writes=False)
            if durable is not None and durable[1] > after:
                return True
            marker = signature(paths.idx, paths.snapshot)
            # Polling stays, slower while inotify works: it alone sees other NFS clients' writes.
            poll = WATCHED_POLL_SECONDS if woken is not None else TAIL_POLL_SECONDS
            while loop.time() < deadline:
                step = min(poll, max(0.0, deadline - loop.time()))
                if woken is None:
                    await asyncio.sleep(step)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(woken.wait(), step)
                    woken.clear()
                if signature(paths.idx, paths.snapshot) != marker:
                    return True
        return False
