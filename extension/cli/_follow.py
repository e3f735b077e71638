"""Following a task to its end (`tail`, `submit --wait`): a progress bar, and the exit status."""

from __future__ import annotations

import sys
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from jupyter_deepresearch.extension.lifecycle import PauseReason
from jupyter_deepresearch.kernel_helpers._client import ResearchClient
from jupyter_deepresearch.kernel_helpers._render import ProgressPrinter, short_query
from jupyter_deepresearch.kernel_helpers._state import TaskEvent, TaskSnapshot

from ._exit import ExitCode

# Pauses that end by themselves (a server restarting, a disk filling up, a worker handing a task
# back to its owner's server); the others wait for a person.
SELF_RESUMING = frozenset(
    reason.value for reason in (PauseReason.shutdown, PauseReason.storage, PauseReason.owner)
)
EXIT_BY_STATUS = {
    "completed": ExitCode.ok,
    "failed": ExitCode.failed,
    "cancelled": ExitCode.cancelled,
}


class Display(Protocol):
    """Where following shows progress (stderr: stdout stays for the report)."""

    def update(self, snapshot: TaskSnapshot, event: TaskEvent | None) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


class BarDisplay:
    """A rich progress bar for a terminal, with status changes and reconnects printed above."""

    def __init__(self, console: Console, snapshot: TaskSnapshot) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[message]}", markup=False),
            console=console,
            transient=True,
        )
        self._bar = self._progress.add_task(
            short_query(snapshot.query, 40), total=100, message=snapshot.message
        )
        self._status = snapshot.status
        self._progress.start()
        self.update(snapshot, None)

    def update(self, snapshot: TaskSnapshot, event: TaskEvent | None) -> None:
        if snapshot.status != self._status:
            self._status = snapshot.status
            self.note(status_line(snapshot))
        text = f"{snapshot.status} {snapshot.step}: {snapshot.message}".strip()
        self._progress.update(
            self._bar, completed=snapshot.percentage, message=short_query(text, 60)
        )

    def note(self, text: str) -> None:
        self._progress.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self._progress.stop()


class LineDisplay:
    """Plain lines where stderr is no terminal (a log file, CI): each status and step change."""

    def __init__(self, console: Console, snapshot: TaskSnapshot) -> None:
        self._console = console
        self._printer = ProgressPrinter()
        self.note(f"{status_line(snapshot)} ({snapshot.percentage}%)")

    def update(self, snapshot: TaskSnapshot, event: TaskEvent | None) -> None:
        line = self._printer.line(event) if event is not None else None
        if line:
            self.note(line)

    def note(self, text: str) -> None:
        self._console.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        pass


def follow(client: ResearchClient, task_id: str, *, quiet: bool = False) -> TaskSnapshot:
    """Follow the task until it ends or pauses for a person; its last known state.

    The event stream reconnects on its own after a dropped connection or a server restart,
    sending `Last-Event-ID`, so no event is missed or repeated.
    """
    snapshot = TaskSnapshot.from_info(client.info(task_id))
    if snapshot.status == "paused":
        snapshot.reason = pause_reason(client, snapshot)
    if snapshot.terminal or waits_for_a_person(snapshot):
        return snapshot
    console = Console(file=sys.stderr, quiet=quiet)
    display: Display = (
        BarDisplay(console, snapshot) if console.is_terminal else LineDisplay(console, snapshot)
    )

    def reconnecting(failures: int, error: BaseException | None) -> None:
        why = f": {' '.join(str(error).split())}" if error else ""
        display.note(f"connection lost{why}; reconnecting (attempt {failures})")

    stream = client.event_stream(task_id, after=snapshot.last_event_id, on_reconnect=reconnecting)
    try:
        for event in stream:
            snapshot.apply(event)
            display.update(snapshot, event)
            if waits_for_a_person(snapshot):
                break
    finally:
        stream.close()
        display.close()
    if not snapshot.terminal and not waits_for_a_person(snapshot):
        # The stream ended with nothing left to send (204): the task ended meanwhile.
        snapshot.merge(client.info(task_id))
    return snapshot


def pause_reason(client: ResearchClient, snapshot: TaskSnapshot) -> str | None:
    """Why a paused task paused: the `reason` of its last event, the pause itself.

    `TaskInfo` does not say; nothing happens to a paused task after its pause event, so reading
    the last event (not the whole history) tells.
    """
    last = snapshot.last_event_id
    for event in client.events(snapshot.task_id, after=max(0, last - 1), follow=False):
        if event.type == "status" and event.data.get("status") == "paused":
            return str(event.data.get("reason") or PauseReason.user.value)
    return None  # unknown: treated as a person's pause, so a script never waits for nothing


def status_line(snapshot: TaskSnapshot) -> str:
    """`[status]` with the error of a failed task or the reason a task paused."""
    detail = snapshot.error or (snapshot.message if snapshot.status == "paused" else "")
    return f"[{snapshot.status}]" + (f" {detail}" if detail else "")


def waits_for_a_person(snapshot: TaskSnapshot) -> bool:
    """True when the task is paused and will not go on by itself."""
    return snapshot.status == "paused" and (snapshot.reason or "user") not in SELF_RESUMING


def exit_code(snapshot: TaskSnapshot) -> ExitCode:
    """0 completed, 1 failed, 2 cancelled, 4 paused for a person (see `ExitCode`)."""
    if snapshot.status in EXIT_BY_STATUS:
        return EXIT_BY_STATUS[snapshot.status]
    return ExitCode.paused
