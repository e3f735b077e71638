"""A task's lifecycle: its statuses, events and pause reasons, the moves allowed between
statuses, and how an event changes what is known about a task.

Pure (imports neither tornado nor jupyter_server): the server's `TaskState`, the kernel's
`TaskSnapshot` and widget, and the OpenAPI document all read the same rules from here.
The enums are `str` enums, so stored and wire values stay the plain strings they always were;
compare with the members, write `.value` where a value leaves the process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any, Protocol, TypeVar


class Status(str, Enum):
    """Lifecycle of a task: the seed's four plus `queued` and `cancelled`."""

    queued = "queued"
    running = "running"
    paused = "paused"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once the task will emit no more events without a resume or restart."""
        return self in (Status.completed, Status.failed, Status.cancelled)

    @property
    def active(self) -> bool:
        """True while a runner owns (or is about to own) the task."""
        return self in (Status.queued, Status.running)


class _Name(str, Enum):
    # Shown as its value, so an f-string or SSE `event:` line never says "EventType.status".
    def __str__(self) -> str:
        return str(self.value)


class EventType(_Name):
    """The kinds of event in a task's stream and log."""

    status = "status"  # data: status, and error / reason where they apply
    progress = "progress"  # data: step, percentage, message
    output = "output"  # data: text (a piece of the report as it is written)
    result = "result"  # data: report, sources


class PauseReason(_Name):
    """Why a task is paused (the `reason` of its `paused` status event)."""

    user = "user"  # asked for through the API or a widget: stays paused until resumed
    shutdown = "shutdown"  # its server stopped: resumed at start-up or taken over
    storage = "storage"  # the store refused writes: resumed once it takes writes again
    credentials = "credentials"  # a key is missing or refused: waits for the user
    owner = "owner"  # a worker left it for its owner's server, which can read its sources


class Action(_Name):
    """What a user can do to a task."""

    pause = "pause"
    resume = "resume"
    cancel = "cancel"
    restart = "restart"
    delete = "delete"


_ANY = frozenset(Status)
# The statuses each action is possible from; any other status answers 409.
MOVES: dict[Action, frozenset[Status]] = {
    Action.pause: frozenset({Status.queued, Status.running}),
    Action.resume: frozenset({Status.paused, Status.failed, Status.cancelled}),
    Action.cancel: frozenset({Status.queued, Status.running, Status.paused}),
    Action.restart: _ANY,
    Action.delete: _ANY,
}
_PAST = {
    Action.pause: "paused",
    Action.resume: "resumed",
    Action.cancel: "cancelled",
    Action.restart: "restarted",
    Action.delete: "deleted",
}


def allowed(action: Action | str, status: Status | str) -> bool:
    """Whether `action` is possible from `status` (an unknown status allows nothing)."""
    return status in MOVES[Action(action)]


def possible_from(action: Action | str) -> str:
    """The statuses `action` is possible from in words: "queued or running"."""
    sources = MOVES[Action(action)]
    return _words(s.value for s in Status if s in sources)


def conflict_message(action: Action | str, task_id: str, status: Status | str) -> str:
    """The 409 message for `action` refused on a task in `status`."""
    action, status = Action(action), Status(status)
    if action is Action.cancel:
        # Only a finished task cannot be cancelled: say that it is.
        return f"Task {task_id} is already {status.value}."
    return (
        f"Task {task_id} is {status.value}; only {possible_from(action)} tasks can be "
        f"{_PAST[action]}."
    )


def _words(items: Iterable[str]) -> str:
    names = list(items)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


# -- folding events into state ----------------------------------------------------------------

S = TypeVar("S", bound=str)


class Foldable(Protocol[S]):
    """The fields an event changes, which the server's and the kernel's state both have."""

    status: S
    step: str
    percentage: int
    message: str
    messages: list[str]
    outputs: list[str]
    result: dict[str, Any] | None
    error: str | None
    paused_by: str | None


# The field an event of each type cannot do without.
_REQUIRED: dict[str, str] = {
    EventType.status: "status",
    EventType.output: "text",
    EventType.result: "report",
}


def fold(
    state: Foldable[S],
    type: str,
    data: dict[str, Any],
    *,
    status_of: Callable[[Any], S],
    keep_messages: int,
    replayed: bool = False,
    strict: bool = False,
) -> None:
    """Apply one event to `state`, the same way on the server and in a kernel.

    `status_of` reads a status value (the server's `Status` refuses an unknown one, the
    kernel's `str` keeps it); the last `keep_messages` progress messages are kept. A
    `replayed` event is history the state already summarises: it adds messages and outputs
    but moves nothing back in time. `strict` (the server) raises `KeyError` for an event
    without its required field before changing anything, so a damaged log record is skipped;
    a client keeps what it knows instead.
    """
    required = _REQUIRED.get(type)
    if strict and required is not None and required not in data:
        raise KeyError(required)
    if type == EventType.status:
        if not replayed:
            _fold_status(state, data, status_of)
    elif type == EventType.progress:
        if not replayed:
            state.step = str(data.get("step", state.step))
            state.percentage = max(state.percentage, int(data.get("percentage", 0)))
        message = data.get("message")
        if message:
            if not replayed:
                state.message = str(message)
            state.messages.append(str(message))
            del state.messages[:-keep_messages]
    elif type == EventType.output:
        state.outputs.append(str(data.get("text", "")))
    elif type == EventType.result and not replayed:
        # Every field of the result (the citation check's too), with the two every reader needs.
        state.result = {
            **data,
            "report": data.get("report", ""),
            "sources": data.get("sources", []),
        }


def _fold_status(state: Foldable[S], data: dict[str, Any], status_of: Callable[[Any], S]) -> None:
    status = status_of(data.get("status", state.status))
    state.status = status
    state.paused_by = (
        data.get("reason", PauseReason.user.value) if status == Status.paused else None
    )
    state.error = data.get("error") if status == Status.failed else None
    if data.get("error") and status != Status.failed:
        # Paused or cancelled for a reason the user should read (a missing key, a full disk).
        state.message = str(data["error"])
