"""Leases held by one task manager: who runs which task when several servers share a store.

Only the holder of a task's lease writes the task. `LeaseKeeper` is the set of leases this
manager holds and the calls that take, renew and release them; `upkeep.Upkeep` renews them every
`seconds / 3` and tells the runner when one was lost (another server took the task over after a
lapse: the local run must stop writing at once).
"""

from __future__ import annotations

import logging

from ..errors import DeepResearchError
from ..store.base import TaskStore
from ..store.owners import new_owner_id


class LeaseKeeper:
    """The set of leases a manager holds."""

    def __init__(self, store: TaskStore, seconds: float, log: logging.Logger | None = None) -> None:
        self.store = store
        self.seconds = seconds if seconds > 0 else 30.0
        self.owner = new_owner_id()
        self.held: set[str] = set()
        self.log = log or logging.getLogger(__name__)

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

    async def release_all(self) -> None:
        """Release every lease held (the tasks' final states are saved)."""
        for task_id in list(self.held):
            await self.release(task_id)

    async def keep(self, task_id: str) -> bool:
        """Keep the lease of a task this manager was writing: renewed, or taken back if it lapsed
        and nobody took it since. False (no longer held) if another server took it, even one
        that has let it go again: what this manager holds of the task is stale then."""
        kept = task_id in await self.store.renew_leases([task_id], self.owner, self.seconds)
        if kept:
            self.held.add(task_id)
        else:
            self.held.discard(task_id)
        return kept

    def adopt(self, task_id: str) -> None:
        """Record a lease taken by `store.create(..., lease=...)`."""
        self.held.add(task_id)

    async def holder(self, task_id: str) -> str | None:
        return await self.store.lease_holder(task_id)

    async def renew(self) -> list[str]:
        """Renew all held leases in one call; the ids of those lost to another server."""
        held = list(self.held)
        if not held:
            return []
        kept = await self.store.renew_leases(held, self.owner, self.seconds)
        lost = []
        for task_id in held:
            # Not taken back with `acquire`: a free lease may be free because another server
            # took the task, finished it and let go while this one was frozen. A backend keeps
            # a lapsed lease nobody else took in `renew_leases` itself.
            if task_id not in kept and task_id in self.held:
                self.held.discard(task_id)
                self.log.warning("Lost the lease of task %s to another server", task_id)
                lost.append(task_id)
        return lost
