"""The live research widget (ipywidgets 8): fed events by a task's thread, or by tests."""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import ipywidgets as widgets

from jupyter_deepresearch.extension.errors import DeepResearchError
from jupyter_deepresearch.extension.lifecycle import Action, allowed
from jupyter_deepresearch.extension.models import TaskInfo

from ._render import sources_in_report
from ._state import TaskEvent, TaskSnapshot

BADGE_COLOURS = {
    "queued": "#6c757d",
    "running": "#0d6efd",
    "paused": "#b8860b",
    "completed": "#198754",
    "failed": "#dc3545",
    "cancelled": "#495057",
}
BAR_STYLES = {"completed": "success", "failed": "danger", "paused": "warning", "cancelled": ""}
# Names the task in a displayed widget's output, so that JupyterLab with our extension can show
# the task from the server where the widget's model is gone (labextension/src/taskOutput.ts).
TASK_MIME = "application/vnd.jupyter-deepresearch.task+json"


class TaskActions(Protocol):
    """What the buttons call; `ResearchTask` provides it."""

    def pause(self) -> Any: ...

    def resume(self) -> Any: ...

    def cancel(self) -> Any: ...


class ResearchWidget(widgets.VBox):
    """Query, id, status badge, progress, step, recent messages, growing report, sources, buttons.

    `on_event`/`on_info` may be called from any thread; the report is re-rendered at most
    every `report_interval` seconds while it streams, and always on the other events.
    """

    report_interval = 0.25

    def __init__(
        self,
        snapshot: TaskSnapshot,
        *,
        actions: TaskActions | None = None,
        on_close: Callable[[ResearchWidget], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self._state = snapshot
        self._actions = actions
        self._on_close = on_close
        self._lock = threading.RLock()
        self._report_shown = ""
        self._status_note = False  # the notice explains the status (not a button's error)
        self._report_at = float("-inf")

        self.title = widgets.HTML()
        self.badge = widgets.HTML()
        self.progress = widgets.IntProgress(min=0, max=100, layout=widgets.Layout(width="60%"))
        self.step = widgets.HTML()
        self.messages = widgets.HTML()
        self.report = widgets.Output(layout=widgets.Layout(max_height="480px", overflow="auto"))
        self.sources = widgets.HTML()
        self.notice = widgets.HTML()
        self.pause_button = widgets.Button(description="Pause", icon="pause")
        self.resume_button = widgets.Button(description="Resume", icon="play")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", button_style="")
        self.pause_button.on_click(lambda _: self._act("pause"))
        self.resume_button.on_click(lambda _: self._act("resume"))
        self.cancel_button.on_click(lambda _: self._act("cancel"))
        buttons = widgets.HBox([self.pause_button, self.resume_button, self.cancel_button])
        header = widgets.HBox([self.badge, self.progress, self.step])
        super().__init__(
            [self.title, header, self.messages, self.report, self.sources, buttons, self.notice],
            **kwargs,
        )
        self._render(force_report=True)

    # -- feeding ------------------------------------------------------------------------------

    @property
    def state(self) -> TaskSnapshot:
        """The widget's own view of the task (tests read it beside the trait values)."""
        return self._state

    def on_event(self, event: TaskEvent) -> None:
        """Fold an event in and update the views."""
        with self._lock:
            self._state.apply(event)
            self._render(force_report=event.type != "output")

    def on_info(self, info: TaskInfo) -> None:
        """Fold a fresher `TaskInfo` in (after a button or `refresh`)."""
        with self._lock:
            self._state.merge(info)
            self._render(force_report=True)

    def on_end(self, error: BaseException | None) -> None:
        """The event stream stopped; show why if it was an error."""
        with self._lock:
            self._render(force_report=True)
            if error is not None:
                self.notice.value = _para(f"Live updates stopped: {error}", "#dc3545")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """The widget view, with the task's id beside it under `TASK_MIME`."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle[TASK_MIME] = {"task_id": self._state.task_id, "query": self._state.query}
        return bundle

    def close(self) -> None:
        """Close the widget and its parts; the task stops streaming if nothing else watches."""
        callback, self._on_close = self._on_close, None
        for child in self._parts():
            child.close()
        super().close()
        if callback is not None:
            callback(self)

    # -- rendering ----------------------------------------------------------------------------

    def _parts(self) -> list[widgets.Widget]:
        return [
            self.title,
            self.badge,
            self.progress,
            self.step,
            self.messages,
            self.report,
            self.sources,
            self.notice,
            self.pause_button,
            self.resume_button,
            self.cancel_button,
            *self.children,
        ]

    def _render(self, *, force_report: bool) -> None:
        s = self._state
        status = s.status
        self.title.value = (
            f"<b>Research</b>: {html.escape(s.query)}<br>"
            f"<small>task <code>{html.escape(s.task_id)}</code></small>"
        )
        colour = BADGE_COLOURS.get(status, "#6c757d")
        self.badge.value = (
            f'<span style="background:{colour};color:white;border-radius:4px;'
            f'padding:2px 8px">{html.escape(status)}</span>'
        )
        self.progress.value = max(0, min(100, s.percentage))
        self.progress.bar_style = BAR_STYLES.get(status, "info")
        self.progress.description = f"{s.percentage}%"
        self.step.value = f"<i>{html.escape(s.step)}</i>" if s.step else ""
        self.messages.value = (
            "<ul>" + "".join(f"<li>{html.escape(m)}</li>" for m in s.messages) + "</ul>"
            if s.messages
            else ""
        )
        # The pipeline's report ends with its own Sources list: list them again only if not.
        self.sources.value = "" if sources_in_report(s) else _sources_html(s.sources)
        inert = self._actions is None
        self.pause_button.disabled = inert or not allowed(Action.pause, status)
        self.resume_button.disabled = inert or not allowed(Action.resume, status)
        self.cancel_button.disabled = inert or not allowed(Action.cancel, status)
        note = ""
        if s.error:
            note = _para(f"Failed: {s.error}", "#dc3545")
        elif status == "paused" and s.reason not in (None, "user") and s.message:
            # Paused by the server (missing credentials): say what is missing.
            note = _para(f"Paused: {s.message}", "#b8860b")
        if note or self._status_note:
            self.notice.value = note
            self._status_note = bool(note)
        self._render_report(force_report)

    def _render_report(self, force: bool) -> None:
        report = self._state.report
        if report == self._report_shown:
            return
        now = time.monotonic()
        if not force and now - self._report_at < self.report_interval:
            return
        self._report_shown, self._report_at = report, now
        self.report.outputs = (
            (
                {
                    "output_type": "display_data",
                    "data": {"text/markdown": report, "text/plain": report},
                    "metadata": {},
                },
            )
            if report
            else ()
        )

    @property
    def report_markdown(self) -> str:
        """The Markdown the report view shows now ("" before any text arrives)."""
        outputs = self.report.outputs
        return str(outputs[0]["data"]["text/markdown"]) if outputs else ""

    def _act(self, action: str) -> None:
        if self._actions is None:
            return
        try:
            getattr(self._actions, action)()
        except DeepResearchError as exc:
            self.notice.value = _para(f"{action.capitalize()} failed: {exc}", "#dc3545")
        else:
            self.notice.value = ""


def _para(text: str, colour: str) -> str:
    return f'<span style="color:{colour}">{html.escape(text)}</span>'


def _sources_html(sources: list[dict[str, Any]]) -> str:
    # Numbered in report order, so item n is the report's citation [n].
    if not sources:
        return ""
    items = []
    for source in sources:
        title = html.escape(str(source.get("title") or source.get("url") or "source"))
        url = str(source.get("url") or "")
        if url.startswith(("http://", "https://")):
            items.append(
                f'<li><a href="{html.escape(url)}" target="_blank" rel="noopener">{title}</a></li>'
            )
        else:
            detail = f" <code>{html.escape(url)}</code>" if url else ""
            items.append(f"<li>{title}{detail}</li>")
    return (
        f"<details open><summary><b>Sources</b> ({len(sources)})</summary>"
        f"<ol>{''.join(items)}</ol></details>"
    )
