"""Text forms of a task: the Markdown view and the compact progress lines (no widgets)."""

from __future__ import annotations

import os
from typing import Any

from jupyter_deepresearch.extension.markdown_text import escape

from ._state import TaskEvent, TaskSnapshot

DISPLAY_ENV = "JUPYTER_DEEPRESEARCH_DISPLAY"


def display_mode() -> str:
    """`widget` inside a Jupyter kernel, `text` elsewhere; `$JUPYTER_DEEPRESEARCH_DISPLAY` wins.

    A kernel cannot see whether its front end renders widgets, so runners without one (nbval,
    papermill, nbconvert) set `JUPYTER_DEEPRESEARCH_DISPLAY=text`.
    """
    forced = os.environ.get(DISPLAY_ENV, "").strip().lower()
    if forced in ("widget", "text"):
        return forced
    try:
        from IPython import get_ipython
    except ImportError:
        return "text"
    shell = get_ipython()
    return "widget" if shell is not None and getattr(shell, "kernel", None) is not None else "text"


def short_query(query: str, limit: int = 80) -> str:
    """The query on one line, cut with an ellipsis past `limit` characters."""
    text = " ".join(query.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ProgressPrinter:
    """Compact text progress: each status change, and each step change with its first message.

    Steps run queries concurrently, so later messages inside a step arrive in varying order;
    the first message of a step and the status changes do not.
    """

    def __init__(self) -> None:
        self._status = ""
        self._step = ""

    def line(self, event: TaskEvent) -> str | None:
        """The line for this event, or None when it adds nothing new."""
        data = event.data
        if event.type == "status":
            status = str(data.get("status", "?"))
            detail = data.get("error")
            if status == self._status and not detail:
                return None
            self._status = status
            return f"[{status}]" + (f" {detail}" if detail else "")
        if event.type == "progress":
            step = str(data.get("step", ""))
            if step == self._step:
                return None
            self._step = step
            line = f"[{int(data.get('percentage', 0)):3d}%] {step}"
            message = data.get("message")
            return f"{line}: {message}" if message else line
        return None


LIVE_NOTE = (
    "*This output showed the task live. Where that view is gone (the kernel restarted, or the "
    "notebook is viewed elsewhere), run the cell again to reattach to the same task, or open it "
    "from JupyterLab's Research panel.*"
)


def markdown(snapshot: TaskSnapshot, *, live: bool = False) -> str:
    """The task as Markdown: header, then the report, the recent messages, or the error.

    `live`: it stands in for a live view that may be gone when the notebook is read (a
    widget's output saved while the task ran), so it says how to get the task back.
    """
    head = f"**Research** `{snapshot.task_id}`: **{snapshot.status}**, {snapshot.percentage}%" + (
        f" ({snapshot.step})" if snapshot.step else ""
    )
    # The question, messages and errors are plain text: `__enter__` must not turn bold.
    parts = [head, "> " + escape(short_query(snapshot.query, 300))]
    if snapshot.error:
        parts.append(f"**Error:** {escape(snapshot.error)}")
    report = snapshot.report
    if report:
        parts.append(report)
    elif snapshot.messages:
        parts.append("\n".join(f"- {escape(m)}" for m in snapshot.messages))
    elif snapshot.message:
        parts.append(f"- {escape(snapshot.message)}")
    if not sources_in_report(snapshot):
        parts.append("**Sources**\n\n" + "\n".join(_source_md(s) for s in snapshot.sources))
    if live and not (snapshot.status == "completed" and snapshot.result is not None):
        parts.append(LIVE_NOTE)
    return "\n\n".join(parts) + "\n"


def sources_in_report(snapshot: TaskSnapshot) -> bool:
    """True when the report already lists every source (or there are none to list)."""
    report = snapshot.report
    return all((url := str(s.get("url") or "")) and url in report for s in snapshot.sources)


def _source_md(source: dict[str, Any]) -> str:
    title = str(source.get("title") or source.get("url") or "source").replace("]", "\\]")
    url = str(source.get("url") or "")
    label = f"[{source.get('id', '')}]"
    return f"- {label} [{title}]({url})" if url else f"- {label} {title}"
