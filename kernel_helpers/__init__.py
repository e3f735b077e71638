"""Kernel side of jupyter-deepresearch: `research()`, `ResearchTask`, `ResearchClient`, widget.

Imports neither tornado nor jupyter_server; ipywidgets and IPython load only when needed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from jupyter_deepresearch.extension.models import AISettings, ReportSettings, SearchSettings

from ._client import ResearchClient
from ._discovery import ServerInfo, discover_server
from ._errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    PayloadTooLargeError,
    ResearchAPIError,
    ResearchCancelled,
    ResearchFailed,
    ResearchPaused,
    ServerNotFound,
    ServerUnreachable,
    ServiceUnavailableError,
    TaskNotFoundError,
)
from ._events import Backoff, EventStream
from ._state import TaskEvent, TaskSnapshot
from ._task import ResearchTask

__all__ = [
    "AISettings",
    "Backoff",
    "BadRequestError",
    "ConflictError",
    "EventStream",
    "ForbiddenError",
    "PayloadTooLargeError",
    "ReportSettings",
    "ResearchAPIError",
    "ResearchCancelled",
    "ResearchClient",
    "ResearchFailed",
    "ResearchPaused",
    "ResearchTask",
    "SearchSettings",
    "ServerInfo",
    "ServerNotFound",
    "ServerUnreachable",
    "ServiceUnavailableError",
    "TaskEvent",
    "TaskNotFoundError",
    "TaskSnapshot",
    "default_client",
    "discover_server",
    "load_ipython_extension",
    "research",
    "unload_ipython_extension",
]

_default: ResearchClient | None = None
_default_lock = threading.Lock()


def default_client() -> ResearchClient:
    """The kernel's shared client, found by `discover_server` on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ResearchClient()
        return _default


def research(
    query: str,
    *,
    ai: Mapping[str, Any] | BaseModel | None = None,
    search: Mapping[str, Any] | BaseModel | None = None,
    report: Mapping[str, Any] | BaseModel | None = None,
    restart: bool = False,
    display: bool = True,
    client: ResearchClient | None = None,
) -> ResearchTask:
    """Start research on the server (or reattach to the same request's task) and return at once.

    `ai`, `search`, `report` take dicts (or the settings models) with only the fields to change;
    the server's defaults fill the rest. `restart=True` runs the task again from scratch.
    """
    return (client or default_client()).research(
        query, ai=ai, search=search, report=report, restart=restart, display=display
    )


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext jupyter_deepresearch.kernel_helpers` registers `%research` / `%%research`."""
    from ._magic import register

    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Nothing to undo: magics stay registered until the kernel restarts."""
