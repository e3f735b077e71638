"""What a client knows about a task: events folded into a snapshot (no I/O, no threads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jupyter_deepresearch.extension.lifecycle import Status, fold
from jupyter_deepresearch.extension.models import TaskInfo

RECENT_MESSAGES = 8  # shown by the widget and the Markdown view
TERMINAL = frozenset(s.value for s in Status if s.terminal)


@dataclass(frozen=True)
class TaskEvent:
    """One event of a task's SSE stream: `id`, `type` (status/progress/output/result), `data`."""

    id: int
    type: str
    data: dict[str, Any]


@dataclass
class TaskSnapshot:
    """A task's state as a client sees it, rebuilt from `TaskInfo` and the events after it."""

    task_id: str
    query: str = ""
    status: str = Status.queued.value
    step: str = ""
    percentage: int = 0
    message: str = ""
    messages: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    reason: str | None = None  # why it is paused: a `PauseReason` value
    attempts: int = 0
    last_event_id: int = 0
    base_event_id: int = 0  # the id the TaskInfo this snapshot started from was current at

    @classmethod
    def from_info(cls, info: TaskInfo) -> TaskSnapshot:
        """The snapshot a `TaskInfo` describes; events after `info.last_event_id` refine it."""
        return cls(
            task_id=info.task_id,
            query=str(info.request.get("query", "")),
            status=info.status.value,
            step=info.step,
            percentage=info.percentage,
            message=info.message,
            result=info.result.model_dump(mode="json") if info.result else None,
            error=info.error,
            attempts=info.attempts,
            last_event_id=info.last_event_id,
            base_event_id=info.last_event_id,
        )

    @property
    def terminal(self) -> bool:
        """True once the task is completed, failed or cancelled."""
        return self.status in TERMINAL

    @property
    def report(self) -> str:
        """The final report once there is one, else the report text streamed so far."""
        if self.result is not None:
            return str(self.result.get("report", ""))
        return "".join(self.outputs)

    @property
    def sources(self) -> list[dict[str, Any]]:
        """The report's numbered sources (`id`, `title`, `url`); empty until completed."""
        return list(self.result.get("sources", [])) if self.result else []

    def merge(self, info: TaskInfo) -> None:
        """Fold a fresher `TaskInfo` in, unless events newer than it were already applied."""
        self.attempts = info.attempts
        if info.last_event_id < self.last_event_id:
            return
        fresh = TaskSnapshot.from_info(info)
        self.status, self.step, self.percentage = fresh.status, fresh.step, fresh.percentage
        self.message = fresh.message or self.message
        self.error = fresh.error
        if fresh.result is not None:
            self.result = fresh.result
        self.last_event_id = info.last_event_id
        # Events up to this id may still arrive on the stream: they are history by now.
        self.base_event_id = max(self.base_event_id, info.last_event_id)

    @property
    def paused_by(self) -> str | None:
        """`reason` under the name the server's state uses (the shared fold sets it)."""
        return self.reason

    @paused_by.setter
    def paused_by(self, value: str | None) -> None:
        self.reason = value

    def apply(self, event: TaskEvent) -> None:
        """Fold one event in, the way the server's own state does.

        Events up to `base_event_id` are history the `TaskInfo` already summarised: they add
        messages and outputs but do not move status, step or percentage back in time.
        """
        replayed = event.id <= self.base_event_id
        self.last_event_id = max(self.last_event_id, event.id)
        fold(
            self,
            event.type,
            event.data,
            status_of=str,
            keep_messages=RECENT_MESSAGES,
            replayed=replayed,
        )
