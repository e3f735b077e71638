"""What the task manager needs from storage: the task state, its events, and the store ABC.

Each backend (`files`, later `redis`) implements `TaskStore`. The manager owns the live
`TaskState` objects of the tasks it runs; the store persists them and replays their events.
"""

from __future__ import annotations

import abc
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..lifecycle import EventType, Status, fold
from ..models import ResearchResult, TaskInfo

EVENT_TYPES = tuple(t.value for t in EventType)
RECENT_MESSAGES = 50  # progress messages kept in the snapshot's seed-format `messages` list


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def expiry_cutoff(older_than: datetime) -> datetime:
    """`older_than` in UTC, floored to the millisecond that stored times keep.

    A task stored as finished at .123 may have finished at .123999; only a stored time before the
    floored cutoff surely lies before `older_than`, so a task that finished in the cutoff's own
    millisecond is kept rather than deleted early.
    """
    if older_than.tzinfo is None:
        older_than = older_than.replace(tzinfo=timezone.utc)
    return older_than.replace(microsecond=older_than.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Event:
    """One SSE event: `id` is consecutive within a task, the same on every server."""

    id: int
    type: str
    data: dict[str, Any]


@dataclass
class TaskState:
    """Everything known about one task. Event-derived fields change only through `apply`."""

    task_id: str
    request: dict[str, Any]  # public form: secrets removed (`models.public_request`)
    owner: str | None = None
    status: Status = Status.queued
    step: str = ""
    percentage: int = 0
    message: str = ""
    messages: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # this run's outputs, never truncated
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None  # when it last became terminal; drives expiry
    attempts: int = 0
    last_event_id: int = 0
    run_first_event_id: int = 1  # the first id of the current run (ids never restart)
    result: dict[str, Any] | None = None
    error: str | None = None
    checkpoints: dict[str, Any] = field(default_factory=dict)
    paused_by: str | None = None  # why it is paused: a `PauseReason` value

    def apply(self, event: Event) -> None:
        """Fold one event into the state; used live and when rebuilding from a log."""
        self.last_event_id = event.id
        self.updated_at = utcnow()
        fold(
            self,
            event.type,
            event.data,
            status_of=Status,
            keep_messages=RECENT_MESSAGES,
            strict=True,
        )
        if event.type == EventType.status:
            self.finished_at = self.updated_at if self.status.terminal else None

    def reset_run(self) -> None:
        """Forget the current run's outputs, checkpoints and result (ids keep counting)."""
        self.run_first_event_id = self.last_event_id + 1
        self.outputs = []
        self.checkpoints = {}
        self.result = None
        self.error = None
        self.step = ""
        self.percentage = 0
        self.message = ""
        self.messages = []
        self.attempts = 0
        self.finished_at = None

    def info(self) -> TaskInfo:
        """The public `TaskInfo` view."""
        return TaskInfo(
            task_id=self.task_id,
            status=self.status,
            step=self.step,
            percentage=self.percentage,
            message=self.message,
            created_at=self.created_at,
            updated_at=self.updated_at,
            request=self.request,
            last_event_id=self.last_event_id,
            attempts=self.attempts,
            owner=self.owner,
            result=ResearchResult.model_validate(self.result) if self.result else None,
            error=self.error,
        )


@dataclass(frozen=True)
class StoreSettings:
    """What `DeepResearchApp` tells any backend: `from_settings` picks what it needs."""

    storage_dir: Path
    redis_url: str = ""
    flush_interval: float = 1.0
    retention_seconds: float = 0.0  # finished tasks' retention (0: keep)
    log: logging.Logger | None = None
    read_only: bool = False  # for inspection (`list`, `show`, `export`): never writes


@dataclass(frozen=True)
class LeaseRequest:
    """Who takes a lease, and for how long without renewal."""

    owner: str
    seconds: float


CONTROL_ACTIONS = ("pause", "cancel", "release")


@dataclass(frozen=True)
class TaskSummary:
    """A listing row: enough for `GET tasks` and start-up decisions without loading outputs."""

    task_id: str
    status: Status
    owner: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    paused_by: str | None = None


class TaskStore(abc.ABC):
    """Persistence of tasks and their event logs. All methods are safe to await concurrently."""

    kind: str = "abstract"
    # Opened for inspection (`jupyter deepresearch list/show --storage-dir`): nothing is written,
    # not even housekeeping (repairs, caches, index pruning); a write raises `StoreUnavailable`.
    read_only: bool = False

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: StoreSettings) -> TaskStore:
        """The store the server's settings describe (each backend reads what it needs)."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the tasks are, for logs (a folder, or a Redis URL without its password)."""

    # Fencing. The manager sets `writer_id` to its lease owner name: a backend then refuses a
    # write of a task whose lease another writer has taken since (a runner frozen longer than
    # its lease must not write over the server that took its task over). A refused task is
    # dropped from the store's writers and reported once through `on_lease_lost`; a direct
    # `save`/`flush` call for it raises `LeaseLost`. Without a `writer_id` nothing is fenced.
    writer_id: str | None = None
    writer_lease_seconds: float = 30.0  # how long a lease taken back by a write lasts
    on_lease_lost: Callable[[str], Awaitable[None]] | None = None

    @abc.abstractmethod
    async def open(self) -> None:
        """Create folders or connections and start background flushing."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush everything pending durably and release resources."""

    @abc.abstractmethod
    async def create(self, state: TaskState, *, lease: LeaseRequest | None = None) -> bool:
        """Persist a new task; False (nothing written) if the id exists, even in another process.

        With `lease`, the creator also takes the task's lease in the same exclusive step, so no
        other server can take a task over between its creation and its first run.
        """

    @abc.abstractmethod
    async def load(self, task_id: str) -> TaskState | None:
        """The full state of a task (repairing damaged files from the log), or None if absent."""

    async def peek(self, task_id: str) -> TaskState | None:
        """The state without outputs or checkpoints, for reading only (never mutate it)."""
        return await self.load(task_id)

    async def peek_many(self, task_ids: list[str]) -> dict[str, TaskState | None]:
        """`peek` of each task, by id; a backend may read them in one go (a listing's batch)."""
        return {task_id: await self.peek(task_id) for task_id in task_ids}

    @abc.abstractmethod
    async def summaries(self) -> list[TaskSummary]:
        """One row per stored task, without loading outputs or checkpoints."""

    async def listing(self) -> list[TaskSummary]:
        """Rows for a listing (`GET tasks`); a backend may serve them from a recent pass."""
        return await self.summaries()

    async def read_hint(self, name: str) -> bytes | None:
        """What `write_hint` kept under `name`, by this process or an earlier one (None: none).

        Hints are caches for a later process (summaries a listing made): whoever reads one checks
        each entry against the tasks before using it. A backend may keep none.
        """
        return None

    async def write_hint(self, name: str, data: bytes) -> None:
        """Keep `data` under `name` (`[a-z0-9-]+`) for `read_hint`; nothing when read-only."""
        return None  # this backend keeps no hints: readers then find none

    async def unfinished(self) -> list[TaskSummary]:
        """Rows of tasks that are not terminal (queued, running, paused): takeover candidates.

        Backends make it cheaper than a listing: Redis keeps an index of these tasks; the
        files store answers from its validated listing cache (a `stat` per file, no reads).
        """
        return [row for row in await self.summaries() if not row.status.terminal]

    @abc.abstractmethod
    async def append(self, state: TaskState, type: str, data: dict[str, Any]) -> Event:
        """Number the event, fold it into `state`, log it (durable within flush_interval)."""

    @abc.abstractmethod
    async def save(self, state: TaskState, *, durable: bool = False) -> None:
        """Write the snapshot (status, progress, outputs, attempts, result...) atomically.

        With `durable=True` the log and snapshot are fsynced before returning; the manager uses
        it before a `completed` status becomes visible.
        """

    @abc.abstractmethod
    async def save_checkpoint(self, state: TaskState, key: str, value: Any) -> None:
        """Record a finished unit of the current run durably and in `state.checkpoints`."""

    @abc.abstractmethod
    async def reset_run(self, state: TaskState) -> None:
        """Start a new run under the same id: `state.reset_run()`, discard the old run on disk."""

    @abc.abstractmethod
    def events(self, task_id: str, after: int = 0) -> AsyncIterator[Event]:
        """Stored events of the current run with id > `after`, oldest first, streamed lazily.

        Includes events appended through this store instance that are not flushed yet.
        """

    @abc.abstractmethod
    async def delete(self, task_id: str) -> bool:
        """Remove a task and all its files; False if it did not exist."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Make every appended event and saved snapshot durable now."""

    @abc.abstractmethod
    async def expire(self, older_than: datetime) -> list[str]:
        """Delete terminal tasks that finished before `older_than`; return their ids."""

    @abc.abstractmethod
    def detach(self, task_id: str) -> None:
        """Stop treating this process as the task's writer (its lease went to another server).

        Unflushed events of the task are dropped: the new holder owns the log now.
        """

    # Leases: only the holder of a task's lease writes the task (events, snapshot, checkpoints).

    @abc.abstractmethod
    async def acquire_lease(self, task_id: str, owner: str, seconds: float) -> bool:
        """Take the lease if it is free, lapsed or already `owner`'s (then renew it)."""

    @abc.abstractmethod
    async def renew_leases(self, task_ids: list[str], owner: str, seconds: float) -> set[str]:
        """Extend `owner`'s leases on `task_ids`; the ids it still holds (the others are lost)."""

    @abc.abstractmethod
    async def release_lease(self, task_id: str, owner: str) -> None:
        """Give the lease up if `owner` holds it."""

    @abc.abstractmethod
    async def lease_holder(self, task_id: str) -> str | None:
        """The owner of the task's live lease, or None if it is free or lapsed."""

    # Control requests: how a server asks the lease holder to pause, cancel or let go.

    @abc.abstractmethod
    async def request_control(self, task_id: str, action: str) -> None:
        """Leave `action` ("pause", "cancel", "release") for the task's lease holder."""

    @abc.abstractmethod
    async def take_controls(self, task_ids: list[str]) -> dict[str, str]:
        """Pending actions for these tasks, removed as they are read."""

    @abc.abstractmethod
    async def wait_changed(self, task_id: str, after: int, timeout: float) -> bool:
        """True once the task may have events past `after` (or changed); False after `timeout`.

        Lets a follower on one server tail a task another server writes.
        """

    async def health(self, counted: OwnerFilter | None = None) -> dict[str, Any]:
        """Facts for `GET health`: at least `kind` and `by_status` (task counts per status).

        `counted` picks the tasks counted by their owner (a user sees only their own counts).
        """
        return {"kind": self.kind, "by_status": count_by_status(await self.summaries(), counted)}


OwnerFilter = Callable[[str | None], bool]

_HINT_NAME = re.compile(r"[a-z0-9-]{1,64}")


def checked_hint_name(name: str) -> str:
    """A `write_hint` name, checked (ValueError): it becomes a file or key name as it is."""
    if not _HINT_NAME.fullmatch(name):
        raise ValueError(f"hint name {name!r} is not 1-64 of a-z, 0-9 and '-'")
    return name


def count_by_status(
    rows: Iterable[TaskSummary], counted: OwnerFilter | None = None
) -> dict[str, int]:
    """Tasks per status (every status present), of the rows whose owner `counted` accepts."""
    counts = dict.fromkeys((status.value for status in Status), 0)
    for row in rows:
        if counted is None or counted(row.owner):
            counts[row.status.value] += 1
    return counts
