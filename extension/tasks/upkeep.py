"""The loops that keep a task manager's tasks alive: the same in a server and in the worker.

- leases: renew every `lease_seconds / 3`, take control requests other servers leave several
  times a second, and look for orphaned tasks every `TAKEOVER_SECONDS` (at most every renewal
  round), so a worker runs the tasks a stopped server released within a few seconds;
- storage: every `MAINTENANCE_SECONDS`, rewrite snapshots and resume tasks a storage outage
  paused (a real write is the probe);
- expiry: delete finished tasks older than `max_task_age_hours`, first a minute after start;
- activity: while research runs, tell an idle culler (the server's `on_activity`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from ..errors import DeepResearchError
from ..store.base import TaskStore, utcnow
from .lease_keeper import LeaseKeeper
from .runner import Runner
from .storage_retry import StorageRetry
from .takeover import Takeover

CONTROL_POLL_SECONDS = 0.25  # pause/cancel from another server act within about this
# A pass reads only unfinished tasks (an unchanged folder is not scanned again; Redis keeps
# an index), so it can come often: released tasks do not wait for a third of a lease.
TAKEOVER_SECONDS = 2.0
MAINTENANCE_SECONDS = 10.0  # storage retries; activity is reported every third tick
SWEEP_SECONDS = 3600.0
MIN_SWEEP_SECONDS = 60.0
# The first sweep waits: tasks a week old can wait a minute, and a start-up (the takeover pass,
# the first requests) should not share the disk with a listing of every task.
FIRST_SWEEP_DELAY_SECONDS = 60.0


class Upkeep:
    """Starts and stops the background loops of one task manager."""

    def __init__(
        self,
        store: TaskStore,
        leases: LeaseKeeper,
        runner: Runner,
        takeover: Takeover,
        storage_retry: StorageRetry,
        *,
        max_task_age_hours: float = 0.0,
        log: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.leases = leases
        self.runner = runner
        self.takeover = takeover
        self.storage_retry = storage_retry
        self.max_task_age_hours = max_task_age_hours
        self.log = log or logging.getLogger(__name__)
        self._loops: list[asyncio.Task[None]] = []
        self._warned: str | None = None

    def start(self) -> None:
        if self._loops:
            return
        self._loops = [
            asyncio.create_task(self._lease_loop(), name="deepresearch-leases"),
            asyncio.create_task(self._maintenance_loop(), name="deepresearch-maintenance"),
            asyncio.create_task(self._expiry_loop(), name="deepresearch-expiry"),
        ]

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []

    async def expire(self) -> list[str]:
        """Delete finished tasks older than the limit (never running, queued or paused ones)."""
        if self.max_task_age_hours <= 0:
            return []
        removed = await self.store.expire(utcnow() - timedelta(hours=self.max_task_age_hours))
        for task_id in removed:
            self.log.info("Expired task %s", task_id)
        return removed

    # ----------------------------------------------------------------- the loops

    async def _lease_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_renew = next_tick = loop.time()
        while True:
            now = loop.time()
            try:
                if now >= next_renew:
                    next_renew = now + self.leases.renew_every
                    for task_id in await self.leases.renew():
                        await self.runner.lease_lost(task_id)
                if self.leases.held:
                    controls = await self.store.take_controls(list(self.leases.held))
                    for task_id, action in controls.items():
                        await self.takeover.control(task_id, action)
                if now >= next_tick:
                    next_tick = now + min(TAKEOVER_SECONDS, self.leases.renew_every)
                    await self.takeover.take_over()
                self._warned = None
            except DeepResearchError as error:
                # Once per distinct problem: an outage must not flood the log 4 times a second.
                if error.message != self._warned:
                    self.log.warning("deepresearch: lease upkeep failed, retrying: %s", error)
                self._warned = error.message
            except Exception:  # the loop must outlive surprises; it retries next round
                self.log.exception("deepresearch: lease upkeep failed")
            await asyncio.sleep(min(CONTROL_POLL_SECONDS, self.leases.renew_every))

    async def _maintenance_loop(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(MAINTENANCE_SECONDS)
            ticks += 1
            if self.runner.running_count and ticks % 3 == 0:
                self.runner.on_activity()
            await _logged(self.log, "storage retry", self.storage_retry.retry)

    async def _expiry_loop(self) -> None:
        await asyncio.sleep(FIRST_SWEEP_DELAY_SECONDS)
        while True:
            await _logged(self.log, "expiry sweep", self.expire)
            # A tenth of the retention, within bounds: a week's retention sweeps hourly.
            hours = self.max_task_age_hours
            await asyncio.sleep(min(SWEEP_SECONDS, max(MIN_SWEEP_SECONDS, hours * 360)))


async def _logged(log: logging.Logger, what: str, call: Callable[[], Awaitable[object]]) -> None:
    """One round of a loop: a failure is logged and the loop goes on (cancellation ends it)."""
    try:
        await call()
    except Exception:
        log.exception("deepresearch: %s failed", what)
