"""Resuming what a storage outage paused, once the store takes writes again.

A run that meets a failing store pauses with reason "storage" and keeps its lease; a finished
task whose last snapshot could not be written is kept aside. Each round rewrites those
snapshots, then probes the store with a real write of each paused task and requeues it.
"""

from __future__ import annotations

from ..errors import DeepResearchError
from ..lifecycle import PauseReason, Status
from .runner import Runner
from .runs import Live


class StorageRetry:
    """One round at a time (the upkeep calls `retry` every few seconds)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def retry(self) -> list[str]:
        """Rewrite stale snapshots and resume storage pauses; the ids resumed."""
        runner = self.runner
        for task_id, stale in list(runner.stale_snapshots.items()):
            try:
                await runner.store.save(stale, durable=True)
            except DeepResearchError:
                break  # still failing; the next round tries again
            runner.stale_snapshots.pop(task_id, None)
            runner.log.info("Storage is back; snapshot of task %s rewritten", task_id)
        resumed = []
        for live in [live for live in runner.live.values() if _storage_paused(live)]:
            task_id = live.state.task_id
            async with runner.locks(task_id):
                # Still this run's: the lease upkeep may have dropped it meanwhile.
                current = runner.live.get(task_id) is live and _storage_paused(live)
                if current and await self._probe_and_requeue(live):
                    resumed.append(task_id)
        return resumed

    async def _probe_and_requeue(self, live: Live) -> bool:
        runner = self.runner
        try:
            # Never `acquire`: the lease may be free because another server took the task over
            # during the outage (or while this one was frozen), finished it and let go; this
            # state is stale then and must not be written over the task.
            if not await runner.leases.keep(live.state.task_id):
                await runner.store_lost(live.state.task_id)
                return False
            # A real write of this task's files: the probe that matters.
            await runner.store.save(live.state, durable=True)
            await runner.events.recover()
        except DeepResearchError:
            return False
        runner.log.info("Storage is back; resuming task %s", live.state.task_id)
        await runner.enqueue(live.state, live.request)
        return True


def _storage_paused(live: Live) -> bool:
    return live.state.status is Status.paused and live.state.paused_by == PauseReason.storage
