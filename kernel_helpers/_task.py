"""`ResearchTask`: one server task seen from the kernel, kept live by a background thread."""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from jupyter_deepresearch.extension.models import Status, TaskInfo

from ._errors import ResearchCancelled, ResearchFailed, ResearchPaused
from ._events import EventStream
from ._render import ProgressPrinter, display_mode, markdown, short_query
from ._state import TaskEvent, TaskSnapshot

if TYPE_CHECKING:
    from ._client import ResearchClient
    from ._widget import ResearchWidget

log = logging.getLogger("jupyter_deepresearch.kernel_helpers")

_LIVE_TASKS: weakref.WeakSet[ResearchTask] = weakref.WeakSet()
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class Listener(Protocol):
    """Receives a task's events from its event thread (the widget is one)."""

    def on_event(self, event: TaskEvent) -> None:
        """A new event, in id order, each once."""

    def on_info(self, info: TaskInfo) -> None:
        """A fresher `TaskInfo` (after pause, resume, cancel, refresh)."""

    def on_end(self, error: BaseException | None) -> None:
        """The event thread stopped (terminal task, close, or `error`)."""


class ResearchTask:
    """A research task on the server. Attributes are live while its event thread runs.

    Made by `research()` or `ResearchClient.submit/get`; never blocks a cell except in `wait`.
    """

    def __init__(self, client: ResearchClient, info: TaskInfo, *, created: bool = False) -> None:
        self._client = client
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._info = info
        self._snapshot = TaskSnapshot.from_info(info)
        self._history: list[TaskEvent] = []
        self._stream_after = 0  # id of the last event received over SSE
        self._listeners: list[Listener] = []
        self._stream: EventStream | None = None
        self._thread: threading.Thread | None = None
        self._follow_error: BaseException | None = None
        self._history_complete = False  # a stream reached the end of a terminal task
        self._waiters = 0
        self._printed = 0  # history entries already printed as text progress
        self._printer = ProgressPrinter()
        self._shown = False  # `show()` ran: `wait()` then prints text progress in text mode
        self.created = created
        """True when this call created the task (HTTP 201), False when it attached (200)."""
        _LIVE_TASKS.add(self)

    # -- live attributes -----------------------------------------------------------------------

    @property
    def task_id(self) -> str:
        """The task id: the first 32 hex digits of the request's fingerprint."""
        return self._info.task_id

    @property
    def query(self) -> str:
        """The research question as submitted."""
        return self._snapshot.query

    @property
    def status(self) -> str:
        """`queued`, `running`, `paused`, `completed`, `failed` or `cancelled`."""
        return self._snapshot.status

    @property
    def step(self) -> str:
        """The pipeline step in progress: `plan`, `queries`, `search`, `report`."""
        return self._snapshot.step

    @property
    def percentage(self) -> int:
        """Progress, 0 to 100; never goes backwards within a run."""
        return self._snapshot.percentage

    @property
    def message(self) -> str:
        """The latest progress message."""
        return self._snapshot.message

    @property
    def messages(self) -> list[str]:
        """The most recent progress messages, oldest first."""
        with self._lock:
            return list(self._snapshot.messages)

    @property
    def report(self) -> str:
        """The Markdown report: final once completed, the part streamed so far before that."""
        with self._lock:
            return self._snapshot.report

    @property
    def sources(self) -> list[dict[str, Any]]:
        """The report's numbered sources, each `{"id", "title", "url"}`."""
        with self._lock:
            return self._snapshot.sources

    @property
    def error(self) -> str | None:
        """Why the task failed, once it has."""
        return self._snapshot.error

    @property
    def attempts(self) -> int:
        """How many times a runner started or resumed this run (from the latest `TaskInfo`)."""
        return self._snapshot.attempts

    @property
    def last_event_id(self) -> int:
        """The id of the newest event this task object knows of."""
        return self._snapshot.last_event_id

    @property
    def info(self) -> TaskInfo:
        """The latest `TaskInfo` the server sent (see `refresh`)."""
        return self._info

    @property
    def following(self) -> bool:
        """True while the event thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def snapshot(self) -> TaskSnapshot:
        """A copy of the current state."""
        with self._lock:
            return _copy(self._snapshot)

    # -- control ------------------------------------------------------------------------------

    def refresh(self) -> ResearchTask:
        """Fetch the task's `TaskInfo` again."""
        self._merge_info(self._client.info(self.task_id))
        return self

    def pause(self) -> ResearchTask:
        """Pause; the unit in progress is redone on resume."""
        self._merge_info(self._client.pause(self.task_id))
        return self

    def resume(self) -> ResearchTask:
        """Resume a paused, failed or cancelled task from its last checkpoint, and follow it."""
        self._merge_info(self._client.resume(self.task_id))
        self.follow()
        return self

    def cancel(self) -> ResearchTask:
        """Cancel; finished units are kept for a later `resume`."""
        self._merge_info(self._client.cancel(self.task_id))
        return self

    def delete(self) -> None:
        """Stop the task and remove it from the server's storage."""
        self.stop()
        self._client.delete(self.task_id)

    def events(self, after: int = 0) -> Iterator[TaskEvent]:
        """The task's events with id > `after` from the server, live until it is terminal."""
        return self._client.events(self.task_id, after=after)

    def wait(self, timeout: float | None = None) -> str:
        """Block until the task is terminal and return the report.

        Raises `ResearchFailed`, `ResearchCancelled`, `ResearchPaused` (unless paused by a
        server shutdown, which resumes by itself), `TimeoutError`, or the error that stopped
        the event stream. In text mode, a shown task prints the progress lines not printed yet.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        text = self._shown and self._mode == "text"
        with self._changed:
            self._waiters += 1
            try:
                while True:
                    if text:
                        self._print_progress()
                    snap = self._snapshot
                    streaming = self.following
                    if snap.terminal and not (streaming and not self._history_complete):
                        return self._outcome(snap)
                    if snap.status == Status.paused.value and snap.reason != "shutdown":
                        raise ResearchPaused(self.task_id, snap.message or "paused")
                    if not streaming:
                        if self._follow_error is not None:
                            raise self._follow_error
                        self._start_follow()
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(
                            f"Research task {self.task_id} is still {snap.status} "
                            f"({snap.percentage}%) after {timeout} s"
                        )
                    self._changed.wait(0.5 if remaining is None else min(remaining, 0.5))
            finally:
                self._waiters -= 1

    # -- following ----------------------------------------------------------------------------

    def follow(self) -> ResearchTask:
        """Start the background event thread if it is not running (never blocks)."""
        with self._lock:
            self._start_follow()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the event thread, waiting up to `timeout` s; attributes keep their values."""
        with self._lock:
            stream, thread = self._stream, self._thread
        if stream is not None:
            stream.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _start_follow(self) -> None:
        if self.following:
            return
        self._follow_error = None
        stream = self._client.event_stream(self.task_id, after=self._stream_after)
        thread = threading.Thread(
            target=self._run,
            args=(stream,),
            name=f"deepresearch-events-{self.task_id[:8]}",
            daemon=True,  # never keeps a kernel from shutting down
        )
        self._stream, self._thread = stream, thread
        thread.start()

    def _run(self, stream: EventStream) -> None:
        error: BaseException | None = None
        try:
            for event in stream:
                self._apply(event)
        except Exception as exc:
            error = exc
            log.warning("Event stream of research task %s stopped: %s", self.task_id, exc)
        if error is None and not stream.closed:
            # The stream reached a terminal task: fetch the final TaskInfo (attempts, result).
            try:
                self._merge_info(self._client.info(self.task_id))
            except Exception as exc:
                log.debug("Could not refresh research task %s: %s", self.task_id, exc)
        with self._lock:
            if error is None and not stream.closed:
                self._history_complete = True
            if self._stream is stream:
                self._follow_error = error
                self._stream = None
            listeners = list(self._listeners)
            self._changed.notify_all()
        for listener in listeners:
            _call(listener.on_end, error)

    def _apply(self, event: TaskEvent) -> None:
        with self._lock:
            if event.id <= self._stream_after:
                return
            self._stream_after = event.id
            self._history.append(event)
            self._snapshot.apply(event)
            listeners = list(self._listeners)
            self._changed.notify_all()
        for listener in listeners:
            _call(listener.on_event, event)

    def _merge_info(self, info: TaskInfo) -> None:
        with self._lock:
            self._info = info
            self._snapshot.merge(info)
            listeners = list(self._listeners)
            self._changed.notify_all()
        for listener in listeners:
            _call(listener.on_info, info)

    # -- display ------------------------------------------------------------------------------

    @property
    def _mode(self) -> str:
        return display_mode()

    def show(self) -> None:
        """Display the live widget, or in text mode print a one-line summary."""
        self._shown = True
        if self._mode == "widget":
            from IPython.display import display

            display(self)
            return
        state = "new" if self.created else f"attached, {self.status}"
        print(f"Research task {self.task_id} ({state}): {short_query(self.query)}")
        sys.stdout.flush()

    def widget(self) -> ResearchWidget:
        """A new widget for this task: its history replayed, then live."""
        from ._widget import ResearchWidget

        with self._lock:
            widget = ResearchWidget(
                TaskSnapshot.from_info(self._info),
                actions=self,
                on_close=self._detach,
            )
            for event in self._history:
                widget.on_event(event)
            self._listeners.append(widget)
            self._start_follow()
        return widget

    def _detach(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
            idle = not self._listeners and not self._waiters
        if idle:
            self.stop()

    def _print_progress(self) -> None:
        for event in self._history[self._printed :]:
            line = self._printer.line(event)
            if line is not None:
                print(line)
        self._printed = len(self._history)
        sys.stdout.flush()

    def _outcome(self, snap: TaskSnapshot) -> str:
        if snap.status == Status.failed.value:
            raise ResearchFailed(self.task_id, snap.error or snap.message or "unknown error")
        if snap.status == Status.cancelled.value:
            raise ResearchCancelled(self.task_id)
        return snap.report

    def _repr_markdown_(self) -> str:
        with self._lock:
            return markdown(self._snapshot)

    def _ipython_display_(self) -> None:
        """`display(task)`: in widget mode the live widget, replaced by the Markdown report
        once the task completes, so a saved notebook keeps the report wherever the widget's
        model is gone (a restarted kernel, another machine, nbconvert, GitHub)."""
        from IPython.display import display

        if self._mode != "widget":
            display(self._repr_mimebundle_(), raw=True)
            return
        if _settled(self._snapshot):
            display(self._markdown_bundle(), raw=True)
            return
        widget = self.widget()
        view = widget._repr_mimebundle_() or {}
        # The widget view and our task reference; the Markdown is what viewers without the
        # widget's model show (nbconvert, GitHub, a front end after a kernel restart).
        bundle = {**view, **self._markdown_bundle(live=True)}
        handle = display(bundle, raw=True, display_id=True)
        settle = _SettleToMarkdown(self, handle)
        with self._lock:
            self._listeners.append(settle)
        settle.check()  # in case it completed while the widget was being shown

    def _markdown_bundle(self, *, live: bool = False) -> dict[str, Any]:
        with self._lock:
            text = markdown(self._snapshot, live=live)
        return {"text/plain": repr(self), "text/markdown": text}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if self._mode == "widget":
            view = self.widget()._repr_mimebundle_() or {}
            if WIDGET_VIEW in view:
                return {**view, **self._markdown_bundle(live=True)}
        return self._markdown_bundle()

    def __repr__(self) -> str:
        snap = self._snapshot
        return f"<ResearchTask {self.task_id} {snap.status} {snap.percentage}%>"


def _settled(snapshot: TaskSnapshot) -> bool:
    """Completed with its final result: nothing left for the live widget to show."""
    return snapshot.status == Status.completed.value and snapshot.result is not None


class _SettleToMarkdown:
    """Listener that turns a displayed widget into the Markdown report once the task completes.

    Widget outputs need the kernel's widget model, which a saved notebook reopened after a
    restart no longer has ("Error displaying widget: model not found"); Markdown needs nothing.
    """

    def __init__(self, task: ResearchTask, handle: Any) -> None:
        self._task, self._handle = task, handle
        self._done = False

    def on_event(self, event: TaskEvent) -> None:
        self.check()

    def on_info(self, info: TaskInfo) -> None:
        self.check()

    def on_end(self, error: BaseException | None) -> None:
        self.check()

    def check(self) -> None:
        task = self._task
        with task._lock:
            if self._done or not _settled(task._snapshot):
                return
            self._done = True
            bundle = task._markdown_bundle()
            if self in task._listeners:
                task._listeners.remove(self)
        # The widget itself stays: `task.widget()`s and scripts may still read it.
        self._handle.update(bundle, raw=True)


def _copy(snapshot: TaskSnapshot) -> TaskSnapshot:
    from dataclasses import replace

    return replace(snapshot, messages=list(snapshot.messages), outputs=list(snapshot.outputs))


def _call(method: Any, *args: Any) -> None:
    try:
        method(*args)
    except Exception:  # a broken listener must not stop the event thread
        log.exception("Listener %r failed", method)


@atexit.register
def _stop_all() -> None:
    # The kernel is exiting: end every event thread instead of leaving sockets half-read.
    for task in list(_LIVE_TASKS):
        task.stop()
