"""The `redis` backend: task state in hashes, events in streams, leases with expiry.

Keys (prefix from the URL's `?prefix=`, default `deepresearch:`), all in `Keys`:
  {p}tasks           sorted set: task ids scored by creation time (the listing)
  {p}active          set: ids of tasks that are not terminal (takeover candidates)
  {p}active:built    string: present once `active` was filled for tasks stored before it
  {p}task:{id}       hash: the `TaskInfo` fields, JSON-encoded (no outputs), and `_writer`:
                     the lease owner that wrote it last (fencing)
  {p}events:{id}     stream of the current run: entry id `N-1` is SSE id N, fields t (type), d
  {p}ckpt:{id}       hash: checkpoints of the current run
  {p}lease:{id}      string: the lease holder, with a PX expiry (SET NX PX, Lua renew/release)
  {p}control:{id}    string: a pending control action for the holder
Appends are buffered and written by `flush` in one pipeline (XADDs plus the head's HSET), so
the cost of an event does not grow with the task. Durability is whatever the Redis server is
configured for (`appendonly yes` + `appendfsync everysec` matches `flush_interval=1`). The
indexes (`tasks`, `active`) and the expiry sweep are in `_redis_index`, the hash's encoding in
`codec`.

The scripts that write a task's head also keep the `active` set and the expiry: with
`retention_seconds`, a finished task's hash, stream and checkpoints expire on their own at
finishedAt + retention (a resumed task's are kept again); ids left in `tasks` by expired hashes
are dropped when the listing meets them. With a `writer_id`, every write of a task is fenced in
its script: it happens only while the writer holds the task's lease, or wrote it last and nobody
took the lapsed lease since.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from ..errors import LeaseLost, StoreUnavailable
from ..lifecycle import EventType
from ._redis_index import RedisIndexes
from ._redis_keys import Keys, RedisSettings
from ._redis_scripts import (
    ACQUIRE_SCRIPT,
    CHECKPOINT_SCRIPT,
    CREATE_SCRIPT,
    FLUSH_SCRIPT,
    LOST,
    RELEASE_SCRIPT,
    RENEW_SCRIPT,
    RESET_SCRIPT,
    WRITTEN,
)
from .base import (
    CONTROL_ACTIONS,
    EVENT_TYPES,
    Event,
    LeaseRequest,
    OwnerFilter,
    StoreSettings,
    TaskState,
    checked_hint_name,
    count_by_status,
)
from .codec import from_hash, hash_fields, hash_value
from .owners import owner_gone

_T = TypeVar("_T")
_BATCH = 1000  # stream entries per XRANGE round trip
_POOL_SIZE = 32  # connections for ordinary commands (pipelines keep the count low)
_TAIL_POOL_SIZE = 1024  # blocking reads: one per task followed from another server


def _event(entry_id: bytes, fields: dict[bytes, bytes]) -> Event:
    return Event(int(entry_id.split(b"-", 1)[0]), fields[b"t"].decode(), json.loads(fields[b"d"]))


class _Writer:
    """Bookkeeping of a task this store writes: the live state and unflushed events."""

    def __init__(self, state: TaskState) -> None:
        self.state = state
        self.pending: list[Event] = []
        self.dirty = False


class RedisTaskStore(RedisIndexes):
    """Tasks in Redis; any number of servers and workers may share one database."""

    kind = "redis"

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> RedisTaskStore:
        return cls(
            settings.redis_url,
            flush_interval=settings.flush_interval,
            retention_seconds=settings.retention_seconds,
            log=settings.log,
            read_only=settings.read_only,
        )

    @property
    def location(self) -> str:
        return f"{self.settings.display()} (prefix {self.settings.prefix!r})"

    def __init__(
        self,
        url: str,
        *,
        flush_interval: float = 1.0,
        retention_seconds: float = 0.0,
        log: logging.Logger | None = None,
        read_only: bool = False,
    ) -> None:
        self.settings = RedisSettings.from_url(url)
        self.read_only = read_only
        self.keys = Keys(self.settings.prefix)
        self.flush_interval = flush_interval
        self.retention_seconds = retention_seconds  # 0: finished tasks are kept forever
        self.log = log or logging.getLogger(__name__)
        self._client: Any = None
        self._tail_client: Any = None
        self._writers: dict[str, _Writer] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._failure: StoreUnavailable | None = None
        # Tasks whose last write was refused by fencing: reported once, until written again.
        self._lost: set[str] = set()

    # Plumbing

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect(_POOL_SIZE, socket_timeout=5)
        return self._client

    @property
    def tail_client(self) -> Any:
        """Connections for `XREAD BLOCK` only, so tailing never starves other commands."""
        if self._tail_client is None:
            self._tail_client = self._connect(_TAIL_POOL_SIZE, socket_timeout=None)
        return self._tail_client

    def _connect(self, size: int, socket_timeout: float | None) -> Any:
        import redis.asyncio as aioredis  # the `redis` extra; only needed for this backend

        # A burst of requests waits for a free connection instead of failing; short connect
        # timeouts turn a Redis that went away into a quick 503, not a hang.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.settings.url,
            max_connections=size,
            timeout=5,
            socket_connect_timeout=2,
            socket_timeout=socket_timeout,
        )
        return aioredis.Redis(connection_pool=pool)

    async def _call(self, fn: Callable[[], Awaitable[_T]], *, writes: bool = True) -> _T:
        """Run Redis commands; connection trouble becomes `StoreUnavailable`."""
        from redis.exceptions import RedisError

        if writes and self.read_only:
            raise StoreUnavailable(f"Redis at {self.settings.display()} is opened read-only")
        try:
            result = await fn()
        except RedisError as exc:
            error = StoreUnavailable(f"Redis at {self.settings.display()} is unavailable ({exc})")
            if writes:
                self._failure = error
            raise error from exc
        if writes:
            self._failure = None
        return result

    def _writer(self, state: TaskState) -> _Writer:
        writer = self._writers.get(state.task_id)
        if writer is None:
            writer = self._writers[state.task_id] = _Writer(state)
        writer.state = state
        return writer

    # Lifecycle

    async def open(self) -> None:
        """Check the connection and start the background flusher (read-only: only check)."""
        await self._call(lambda: self.client.ping(), writes=False)
        if self.read_only:
            return
        await self._index_unfinished()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name="deepresearch-flush")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        try:
            await self.flush()
        finally:
            for client in (self._client, self._tail_client):
                if client is not None:
                    await client.aclose()
                    await client.connection_pool.disconnect()
            self._client = self._tail_client = None

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            with contextlib.suppress(StoreUnavailable):
                await self.flush()

    # Writing

    async def create(self, state: TaskState, *, lease: LeaseRequest | None = None) -> bool:
        owner = lease.owner if lease else ""
        ms = str(int(lease.seconds * 1000)) if lease else "0"
        writer = hash_value(self.writer_id) if self.writer_id is not None else ""
        keys = [*self.keys.head(state.task_id), self.keys.tasks]
        args = [state.created_at.timestamp(), state.task_id, owner, ms, writer]
        args += [*self._keep_args(state), *_flat(state)]
        created = await self._call(lambda: self.client.eval(CREATE_SCRIPT, len(keys), *keys, *args))
        if created:
            self._lost.discard(state.task_id)
            self._writer(state)
        return bool(created)

    async def append(self, state: TaskState, type: str, data: dict[str, Any]) -> Event:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        event = Event(state.last_event_id + 1, type, data)
        json.dumps(data)  # before `apply`: unserialisable data changes nothing
        state.apply(event)
        writer = self._writer(state)
        writer.pending.append(event)
        writer.dirty = True
        return event

    async def save(self, state: TaskState, *, durable: bool = False) -> None:
        self._writer(state).dirty = True
        await self._flush()
        # Also set when a concurrent flush (the background one) met the refusal first.
        if state.task_id in self._lost:
            raise LeaseLost(state.task_id)
        self._settle(state)

    async def save_checkpoint(self, state: TaskState, key: str, value: Any) -> None:
        encoded = json.dumps(value, ensure_ascii=False)
        state.checkpoints[key] = value
        task_id = state.task_id
        if task_id in await self._flush():
            raise LeaseLost(task_id)
        keys = [self.keys.task(task_id), self.keys.checkpoints(task_id), self.keys.lease(task_id)]
        args = [*self._fence_args(), key, encoded]
        code = await self._call(lambda: self.client.eval(CHECKPOINT_SCRIPT, 3, *keys, *args))
        await self._check_written(task_id, code)

    async def reset_run(self, state: TaskState) -> None:
        writer = self._writer(state)
        writer.pending.clear()
        state.reset_run()
        task_id = state.task_id
        keys = self.keys.head(task_id)
        args = [task_id, *self._fence_args(), *self._keep_args(state), *_flat(state)]
        code = await self._call(lambda: self.client.eval(RESET_SCRIPT, len(keys), *keys, *args))
        writer.dirty = False
        await self._check_written(task_id, code)

    async def flush(self) -> None:
        """Write every buffered event and changed head, one pipeline for all tasks.

        Never raises `LeaseLost`: a fenced-off task is dropped and reported through
        `on_lease_lost`, and the other tasks are written all the same.
        """
        await self._flush()

    async def _flush(self) -> set[str]:
        """`flush`; the ids of tasks whose writes were refused by fencing."""
        report: list[str] = []
        lost: set[str] = set()
        async with self._lock:
            writers = [w for w in self._writers.values() if w.dirty or w.pending]
            if not writers:
                return lost
            batches = [(w, list(w.pending)) for w in writers]
            fence = self._fence_args()

            async def run() -> Any:
                pipe = self.client.pipeline(transaction=False)
                for writer, events in batches:
                    state = writer.state
                    args: list[Any] = [state.task_id, *fence, *self._keep_args(state)]
                    args.append(len(events))
                    for event in events:
                        args += [f"{event.id}-1", event.type, json.dumps(event.data)]
                    keys = self.keys.head(state.task_id)
                    pipe.eval(FLUSH_SCRIPT, len(keys), *keys, *args, *_flat(state))
                return await pipe.execute()

            codes = await self._call(run)
            for (writer, events), code in zip(batches, codes, strict=True):
                task_id = writer.state.task_id
                if code == LOST:
                    lost.add(task_id)
                    if self._refused(task_id):
                        report.append(task_id)
                    continue
                if code == WRITTEN:
                    self._lost.discard(task_id)
                del writer.pending[: len(events)]
                writer.dirty = False
            for writer, _ in batches:
                if writer.state.task_id not in lost:
                    self._settle(writer.state)
        # Outside the lock: the callback stops a runner, which may flush or save on its way out.
        await self._report_lost(report)
        return lost

    def _settle(self, state: TaskState) -> None:
        writer = self._writers.get(state.task_id)
        idle = writer is not None and not writer.pending and not writer.dirty
        if idle and not state.status.active:
            del self._writers[state.task_id]

    # Fencing and expiry

    def _fence_args(self) -> list[Any]:
        """Writer, writer as JSON and lease ms for the scripts' `may_write` ('' = unfenced)."""
        if self.writer_id is None:
            return ["", "", 0]
        return [self.writer_id, hash_value(self.writer_id), int(self.writer_lease_seconds * 1000)]

    def _keep_args(self, state: TaskState) -> list[str]:
        """Expire-at ms ('0' = keep) and the `active` flag for a head in this state."""
        expire_at = 0
        if self.retention_seconds > 0 and state.status.terminal and state.finished_at:
            expire_at = int((state.finished_at.timestamp() + self.retention_seconds) * 1000)
        return [str(expire_at), "0" if state.status.terminal else "1"]

    def _refused(self, task_id: str) -> bool:
        """Drop a fenced-off task's writer like `detach`; True if the loss is news."""
        writer = self._writers.pop(task_id, None)
        if writer is not None:
            writer.pending.clear()  # the new holder owns the log: these must never reach it
        news = task_id not in self._lost
        self._lost.add(task_id)
        return news

    async def _report_lost(self, task_ids: list[str]) -> None:
        if self.on_lease_lost is None:
            return
        for task_id in task_ids:
            await self.on_lease_lost(task_id)

    async def _check_written(self, task_id: str, code: int) -> None:
        """After a direct write's script: report and raise a refusal."""
        if code == LOST:
            if self._refused(task_id):
                await self._report_lost([task_id])
            raise LeaseLost(task_id)
        if code == WRITTEN:
            self._lost.discard(task_id)

    # Reading

    async def peek(self, task_id: str) -> TaskState | None:
        return (await self.peek_many([task_id]))[task_id]

    async def peek_many(self, task_ids: list[str]) -> dict[str, TaskState | None]:
        """`peek` of each task: the hashes of tasks this store does not write in one round trip."""
        found: dict[str, TaskState | None] = {}
        others = []
        for task_id in task_ids:
            writer = self._writers.get(task_id)
            if writer is not None:
                found[task_id] = writer.state
            else:
                others.append(task_id)

        async def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for task_id in others:
                pipe.hgetall(self.keys.task(task_id))
            return await pipe.execute()

        if others:
            raws = await self._call(read, writes=False)
            for task_id, raw in zip(others, raws, strict=True):
                found[task_id] = from_hash(task_id, raw) if raw else None
        return {task_id: found[task_id] for task_id in task_ids}  # in the order asked

    async def load(self, task_id: str) -> TaskState | None:
        writer = self._writers.get(task_id)
        if writer is not None:
            return writer.state
        state = await self.peek(task_id)
        if state is None:
            return None
        async for event in self.events(task_id, state.run_first_event_id - 1):
            if event.type == EventType.output and event.id <= state.last_event_id:
                state.outputs.append(event.data["text"])
        raw = await self._call(
            lambda: self.client.hgetall(self.keys.checkpoints(task_id)), writes=False
        )
        state.checkpoints = {k.decode(): json.loads(v) for k, v in raw.items()}
        return state

    async def events(self, task_id: str, after: int = 0) -> AsyncIterator[Event]:
        """XRANGE from `after + 1` in batches, then this store's unflushed events."""
        last = after
        key = self.keys.events(task_id)
        while True:
            start = f"{last + 1}-0"
            batch = await self._call(
                partial(self.client.xrange, key, min=start, count=_BATCH), writes=False
            )
            for entry_id, fields in batch:
                event = _event(entry_id, fields)
                yield event
                last = event.id
            if len(batch) < _BATCH:
                break
        writer = self._writers.get(task_id)
        for event in list(writer.pending) if writer else []:
            if event.id > last:
                yield event
                last = event.id

    async def wait_changed(self, task_id: str, after: int, timeout: float) -> bool:
        """XREAD BLOCK on the task's stream for entries past `after`."""
        key = self.keys.events(task_id)
        block = max(1, int(timeout * 1000))
        found = await self._call(
            lambda: self.tail_client.xread({key: f"{after}-1"}, count=1, block=block),
            writes=False,
        )
        return bool(found)

    # Removal and upkeep

    async def delete(self, task_id: str) -> bool:
        self._writers.pop(task_id, None)
        self._lost.discard(task_id)

        async def run() -> Any:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(*self.keys.of(task_id))
            pipe.zrem(self.keys.tasks, task_id)
            pipe.srem(self.keys.active, task_id)
            return await pipe.execute()

        results = await self._call(run)
        return bool(results[0])

    def detach(self, task_id: str) -> None:
        self._writers.pop(task_id, None)

    # Leases and control

    async def acquire_lease(self, task_id: str, owner: str, seconds: float) -> bool:
        key = self.keys.lease(task_id)
        current = await self._call(lambda: self.client.get(key))
        # A holder that is a dead process on this host may be replaced at once.
        stale = current.decode() if current and owner_gone(current.decode()) else ""
        ms = int(seconds * 1000)
        taken = await self._call(lambda: self.client.eval(ACQUIRE_SCRIPT, 1, key, owner, ms, stale))
        if taken:
            self._lost.discard(task_id)  # ours again: a refusal from now on is a new loss
        return bool(taken)

    async def renew_leases(self, task_ids: list[str], owner: str, seconds: float) -> set[str]:
        if not task_ids:
            return set()
        keys = [self.keys.lease(t) for t in task_ids] + [self.keys.task(t) for t in task_ids]
        args = [owner, int(seconds * 1000), hash_value(owner)]
        held = await self._call(lambda: self.client.eval(RENEW_SCRIPT, len(keys), *keys, *args))
        return {task_ids[int(i) - 1] for i in held}

    async def release_lease(self, task_id: str, owner: str) -> None:
        await self._call(
            lambda: self.client.eval(RELEASE_SCRIPT, 1, self.keys.lease(task_id), owner)
        )

    async def lease_holder(self, task_id: str) -> str | None:
        value = await self._call(lambda: self.client.get(self.keys.lease(task_id)), writes=False)
        if value is None or owner_gone(value.decode()):
            return None
        return str(value.decode())

    async def request_control(self, task_id: str, action: str) -> None:
        if action not in CONTROL_ACTIONS:
            raise ValueError(f"unknown control action {action!r}")
        # Expires on its own if nobody holds the task to act on it.
        await self._call(lambda: self.client.set(self.keys.control(task_id), action, ex=60))

    async def take_controls(self, task_ids: list[str]) -> dict[str, str]:
        if not task_ids:
            return {}

        async def run() -> Any:
            pipe = self.client.pipeline(transaction=False)
            for task_id in task_ids:
                pipe.getdel(self.keys.control(task_id))
            return await pipe.execute()

        values = await self._call(run)
        return {t: v.decode() for t, v in zip(task_ids, values, strict=True) if v is not None}

    # Hints for the next process

    async def read_hint(self, name: str) -> bytes | None:
        key = self.keys.hint(checked_hint_name(name))
        value: bytes | None = await self._call(lambda: self.client.get(key), writes=False)
        return value

    async def write_hint(self, name: str, data: bytes) -> None:
        key = self.keys.hint(checked_hint_name(name))
        if not self.read_only:
            # Not a task write: a failure here says nothing of the task storage's health.
            await self._call(lambda: self.client.set(key, data), writes=False)

    async def health(self, counted: OwnerFilter | None = None) -> dict[str, Any]:
        counts = count_by_status(await self.summaries(), counted)
        return {
            "kind": self.kind,
            "tasks": sum(counts.values()),
            "by_status": counts,
            "in_memory": len(self._writers),
            "pending_events": sum(len(w.pending) for w in self._writers.values()),
            "error": self._failure.message if self._failure else None,
        }


def _flat(state: TaskState) -> list[str]:
    return [item for pair in hash_fields(state).items() for item in pair]
