"""The Redis store's indexes: the listing (`tasks`), the unfinished tasks (`active`), expiry.

The sorted set `tasks` and the set `active` hold task ids; the hashes hold the rows. Ids whose
hash is gone (expired through its TTL, a delete racing a write) are dropped when met.
`RedisTaskStore` inherits these calls.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from ..ids import is_task_id
from ..models import Status
from ._redis_keys import Keys
from ._redis_scripts import EXPIRE_SCRIPT, PRUNE_SCRIPT
from .base import TaskStore, TaskSummary, expiry_cutoff
from .codec import LISTING_FIELDS, hash_summary

_T = TypeVar("_T")
_KEYS_PER_SCRIPT = 500  # tasks per index-upkeep script call; the calls share one pipeline
# How a terminal status reads in a hash, for the scripts that drop finished ids from `active`.
_TERMINAL_JSON = tuple(json.dumps(s.value) for s in Status if s.terminal)


class RedisIndexes(TaskStore):
    """Part of `RedisTaskStore`: what it needs of the store is declared here."""

    keys: Keys
    _writers: dict[str, Any]
    _lost: set[str]

    @property
    @abc.abstractmethod
    def client(self) -> Any: ...

    @abc.abstractmethod
    async def _call(self, fn: Callable[[], Awaitable[_T]], *, writes: bool = True) -> _T: ...

    async def _index_unfinished(self) -> None:
        """Fill the `active` set once for tasks stored before it existed.

        Only adds: a task that turns terminal meanwhile is dropped by the next `unfinished()`,
        and one resumed meanwhile is added by its own write.
        """
        if await self._call(lambda: self.client.exists(self.keys.active_built), writes=False):
            return
        ids = [row.task_id for row in await self.summaries() if not row.status.terminal]

        async def run() -> Any:
            pipe = self.client.pipeline(transaction=False)
            if ids:
                pipe.sadd(self.keys.active, *ids)
            pipe.set(self.keys.active_built, 1)
            return await pipe.execute()

        await self._call(run)

    async def summaries(self) -> list[TaskSummary]:
        return [hash_summary(task_id, values) for task_id, values in await self._listed()]

    async def _listed(self) -> list[tuple[str, list[Any]]]:
        """The listing fields of every task in `tasks`, dropping ids whose hash is gone."""
        ids = _task_ids(
            await self._call(lambda: self.client.zrange(self.keys.tasks, 0, -1), writes=False)
        )
        rows, gone = await self._rows(ids)
        if gone:  # expired through their TTL (a sorted set's members cannot expire)
            await self._prune(self.keys.tasks, "ZREM", gone)
        return rows

    async def unfinished(self) -> list[TaskSummary]:
        """From the `active` set: the cost does not grow with the number of finished tasks."""
        ids = sorted(
            _task_ids(
                await self._call(lambda: self.client.smembers(self.keys.active), writes=False)
            )
        )
        rows, gone = await self._rows(ids)
        found = [hash_summary(task_id, values) for task_id, values in rows]
        stale = gone + [row.task_id for row in found if row.status.terminal]
        if stale:  # left by an expiry, a delete racing a write, or the first index build
            await self._prune(self.keys.active, "SREM", stale, _TERMINAL_JSON)
        return sorted((row for row in found if not row.status.terminal), key=_created)

    async def _rows(self, ids: list[str]) -> tuple[list[tuple[str, list[Any]]], list[str]]:
        """The listing fields of these tasks (one pipeline), and the ids whose hash is gone."""
        if not ids:
            return [], []

        async def run() -> Any:
            pipe = self.client.pipeline(transaction=False)
            for task_id in ids:
                pipe.hmget(self.keys.task(task_id), LISTING_FIELDS)
            return await pipe.execute()

        rows, gone = [], []
        for task_id, values in zip(ids, await self._call(run, writes=False), strict=True):
            if values[0] is None:
                gone.append(task_id)
            else:
                rows.append((task_id, values))
        return rows, gone

    async def _prune(
        self, index: str, command: str, ids: list[str], stale: tuple[str, ...] = ()
    ) -> None:
        """Drop ids from an index whose task is gone (or has one of the `stale` statuses)."""
        if self.read_only:
            return  # housekeeping only: the rows returned already leave these ids out

        async def run() -> Any:
            pipe = self.client.pipeline(transaction=False)
            for start in range(0, len(ids), _KEYS_PER_SCRIPT):
                batch = ids[start : start + _KEYS_PER_SCRIPT]
                keys = [index, *(self.keys.task(task_id) for task_id in batch)]
                pipe.eval(PRUNE_SCRIPT, len(keys), *keys, command, len(batch), *batch, *stale)
            return await pipe.execute()

        await self._call(run)

    async def expire(self, older_than: datetime) -> list[str]:
        """The sweep for what TTLs did not cover (e.g. finished before retention was set)."""
        older_than = expiry_cutoff(older_than)
        old = []
        for task_id, values in await self._listed():
            row = hash_summary(task_id, values)
            if row.status.terminal and row.finished_at and row.finished_at < older_than:
                old.append((task_id, values[LISTING_FIELDS.index("finishedAt")]))
        if not old:
            return []

        async def run() -> Any:
            pipe = self.client.pipeline(transaction=False)
            for start in range(0, len(old), _KEYS_PER_SCRIPT):
                keys = [self.keys.tasks, self.keys.active]
                args: list[Any] = []
                for task_id, finished in old[start : start + _KEYS_PER_SCRIPT]:
                    keys += self.keys.of(task_id)
                    args += [task_id, finished]
                pipe.eval(EXPIRE_SCRIPT, len(keys), *keys, *args)
            return await pipe.execute()

        removed = [i.decode() for batch in await self._call(run) for i in batch]
        for task_id in removed:
            self._writers.pop(task_id, None)
            self._lost.discard(task_id)
        return removed


def _task_ids(members: Iterable[bytes]) -> list[str]:
    """The members of an index that are task ids; others (not written by us) are passed over,
    as the files store passes over files named outside the id rule."""
    ids = (member.decode(errors="replace") for member in members)
    return [task_id for task_id in ids if is_task_id(task_id)]


def _created(row: TaskSummary) -> datetime:
    return row.created_at
