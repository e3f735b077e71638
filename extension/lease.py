"""Leases held by one task manager: who runs which task when several servers share a store.

Only the holder of a task's lease writes the task. The keeper renews its leases every
`seconds / 3`, takes pending control requests (pause, cancel, release) for the tasks it holds
several times a second, and tells the manager when a lease was lost (another server took the
task over after a lapse: the local run must stop writing at once).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from .errors import DeepResearchError
from .store._lease import owner_id
from .store.base import TaskStore

CONTROL_POLL_SECONDS = 0.25  # pause/cancel from another server act within about this


def new_owner_id() -> str:
    """A name for this manager's leases: host and pid for people, a nonce for uniqueness."""
    return owner_id(uuid.uuid4().hex[:8])


class LeaseKeeper:
    """The set of leases a manager holds, and the loop that keeps them."""

    def __init__(
        self,
        store: TaskStore,
        seconds: float,
        *,
        on_lost: Callable[[str], Awaitable[None]],
        on_control: Callable[[str, str], Awaitable[None]],
        on_tick: Callable[[], Awaitable[None]],
        log: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.seconds = seconds if seconds > 0 else 30.0
        self.owner = new_owner_id()
        self.held: set[str] = set()
        self._on_lost = on_lost
        self._on_control = on_control
        self._on_tick = on_tick
        self.log = log or logging.getLogger(__name__)
        self._loop_task: asyncio.Task[None] | None = None
        self._warned: str | None = None

    @property
    def renew_every(self) -> float:
        return self.seconds / 3

    async def acquire(self, task_id: str) -> bool:
        """Take (or keep) the task's lease; False if another live server holds it."""
        if await self.store.acquire_lease(task_id, self.owner, self.seconds):
            self.held.add(task_id)
            return True
        return False

    async def release(self, task_id: str) -> None:
        """Let the task go (after its last write), so any server may take it."""
        self.held.discard(task_id)
        try:
            await self.store.release_lease(task_id, self.owner)
        except DeepResearchError as error:
            # It lapses on its own within `seconds`.
            self.log.warning("Lease of task %s not released: %s", task_id, error)

    def adopt(self, task_id: str) -> None:
        """Record a lease taken by `store.create(..., lease=...)`."""
        self.held.add(task_id)

    async def holder(self, task_id: str) -> str | None:
        return await self.store.lease_holder(task_id)

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="deepresearch-leases")

    async def stop(self) -> None:
        """Stop the loop and release every lease (the tasks' final states are saved)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        for task_id in list(self.held):
            await self.release(task_id)

    async def renew(self) -> None:
        """Renew all held leases in one call; report the ones lost."""
        held = list(self.held)
        if not held:
            return
        kept = await self.store.renew_leases(held, self.owner, self.seconds)
        for task_id in held:
            if task_id in kept or task_id not in self.held:
                continue
            # Not taken back with `acquire`: a free lease may be free because another server
            # took the task, finished it and let go while this one was frozen. A backend keeps
            # a lapsed lease nobody else took in `renew_leases` itself.
            if task_id in self.held:
                self.held.discard(task_id)
                self.log.warning("Lost the lease of task %s to another server", task_id)
                await self._on_lost(task_id)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_renew = next_tick = loop.time()
        while True:
            now = loop.time()
            try:
                if now >= next_renew:
                    next_renew = now + self.renew_every
                    await self.renew()
                if self.held:
                    controls = await self.store.take_controls(list(self.held))
                    for task_id, action in controls.items():
                        await self._on_control(task_id, action)
                if now >= next_tick:
                    next_tick = now + self.renew_every
                    await self._on_tick()
                self._warned = None
            except DeepResearchError as error:
                # Once per distinct problem: an outage must not flood the log 4 times a second.
                if error.message != self._warned:
                    self.log.warning("deepresearch: lease upkeep failed, retrying: %s", error)
                self._warned = error.message
            except Exception:  # the loop must outlive surprises; it retries next round
                self.log.exception("deepresearch: lease upkeep failed")
            await asyncio.sleep(min(CONTROL_POLL_SECONDS, self.renew_every))
