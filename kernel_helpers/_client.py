"""`ResearchClient`: the REST routes of the extension, from a kernel or a script."""

from __future__ import annotations

import builtins
import ipaddress
import secrets
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, SecretStr

from jupyter_deepresearch.extension.ids import TASK_ID_RULE, is_task_id
from jupyter_deepresearch.extension.models import TaskInfo

from ._discovery import ENABLE_HINT, ServerInfo, discover_server
from ._errors import ServerNotFound, ServerUnreachable, error_for_status
from ._events import Backoff, EventStream, response_message
from ._state import TaskEvent
from ._task import ResearchTask

Settings = Mapping[str, Any] | BaseModel | None


class ResearchClient:
    """Talks to the extension's HTTP API; found like `discover_server` unless told where.

    Thread-safe: one client serves the kernel's cells and every task's event thread.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        server: ServerInfo | None = None,
        timeout: float = 30.0,
        backoff: Backoff | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.server = server or discover_server(url, token, environ=environ)
        self.backoff = backoff or Backoff()
        headers = dict(self.server.headers)
        cookies = {}
        if not self.server.token:
            # A server without a token checks XSRF on POST/DELETE: any matching cookie+header pair
            # passes tornado's check (the header proves the request is not a cross-site form).
            xsrf = secrets.token_hex(16)
            headers["X-XSRFToken"] = xsrf
            cookies["_xsrf"] = xsrf
        transport = httpx.HTTPTransport(uds=self.server.socket) if self.server.socket else None
        self._http = httpx.Client(
            base_url=self.server.api_url,
            headers=headers,
            cookies=cookies,
            timeout=timeout,
            transport=transport,
            # Proxy variables meant for the internet must not capture a loopback server.
            trust_env=not _is_loopback(self.server.url),
        )

    def __repr__(self) -> str:
        return f"ResearchClient({self.server.url!r}, source={self.server.source!r})"

    def __enter__(self) -> ResearchClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections (streams of tasks made by this client end too)."""
        self._http.close()

    # -- tasks ---------------------------------------------------------------------------------

    def submit(
        self,
        query: str,
        *,
        ai: Settings = None,
        search: Settings = None,
        report: Settings = None,
        restart: bool = False,
    ) -> ResearchTask:
        """Create the task or attach to the existing one; no display, no event thread yet."""
        body: dict[str, Any] = {"query": query}
        for name, value in (("ai", ai), ("search", search), ("report", report)):
            if value is not None:
                body[name] = settings_body(name, value)
        if restart:
            body["restart"] = True
        return self.submit_request(body)

    def submit_request(self, body: Mapping[str, Any]) -> ResearchTask:
        """`POST tasks` with a whole ResearchRequest body (as JSON); not followed yet."""
        response = self._request("POST", "tasks", json=dict(body))
        info = TaskInfo.model_validate(response.json())
        return ResearchTask(self, info, created=response.status_code == 201)

    def research(
        self,
        query: str,
        *,
        ai: Settings = None,
        search: Settings = None,
        report: Settings = None,
        restart: bool = False,
        display: bool = True,
    ) -> ResearchTask:
        """`submit`, start following its events, and show the widget (or text) if `display`."""
        task = self.submit(query, ai=ai, search=search, report=report, restart=restart)
        task.follow()
        if display:
            task.show()
        return task

    def get(self, task_id: str) -> ResearchTask:
        """The task with this id (raises `TaskNotFoundError`); not followed until asked."""
        return ResearchTask(self, self.info(task_id))

    def info(self, task_id: str) -> TaskInfo:
        """The task's current `TaskInfo`."""
        return TaskInfo.model_validate(self._request("GET", f"tasks/{_checked(task_id)}").json())

    def list(
        self,
        status: str | None = None,
        limit: int | None = None,
        *,
        offset: int = 0,
        text: str | None = None,
    ) -> builtins.list[TaskInfo]:
        """Tasks, newest first, optionally only those with `status` or whose query contains
        `text` (any case), from the `offset`-th on, at most `limit`; without their results
        (`info(task_id)` has the report)."""
        params: dict[str, str] = {}
        if offset:
            params["offset"] = str(offset)
        if text:
            params["q"] = text
        if status is not None:
            params["status"] = status
        if limit is not None:
            params["limit"] = str(limit)
        data = self._request("GET", "tasks", params=params).json()
        return [TaskInfo.model_validate(item) for item in data.get("tasks", [])]

    def delete(self, task_id: str) -> None:
        """Stop the task if it runs and remove it from storage."""
        self._request("DELETE", f"tasks/{_checked(task_id)}")

    def pause(self, task_id: str) -> TaskInfo:
        """Pause a queued or running task (`ConflictError` otherwise)."""
        return self._action(task_id, "pause")

    def resume(self, task_id: str) -> TaskInfo:
        """Resume a paused, failed or cancelled task from its last checkpoint."""
        return self._action(task_id, "resume")

    def cancel(self, task_id: str) -> TaskInfo:
        """Cancel a task that has not finished; finished units stay for a later resume."""
        return self._action(task_id, "cancel")

    def health(self) -> dict[str, Any]:
        """The store kind and task counts by status."""
        result: dict[str, Any] = self._request("GET", "health").json()
        return result

    def events(self, task_id: str, after: int = 0, *, follow: bool = True) -> Iterator[TaskEvent]:
        """The task's events with id > `after`; reconnects, and ends once the task is terminal."""
        return iter(self.event_stream(task_id, after=after, follow=follow))

    def event_stream(
        self,
        task_id: str,
        after: int = 0,
        *,
        follow: bool = True,
        on_reconnect: Callable[[int, BaseException | None], None] | None = None,
    ) -> EventStream:
        """An `EventStream` (closable from another thread) of the task's events.

        `on_reconnect(failures, error)` is called before each reconnect (to tell a user).
        """
        return EventStream(
            self._http,
            f"tasks/{_checked(task_id)}/events",
            after=after,
            follow=follow,
            backoff=self.backoff,
            on_reconnect=on_reconnect,
        )

    # -- plumbing ------------------------------------------------------------------------------

    def _action(self, task_id: str, action: str) -> TaskInfo:
        response = self._request("POST", f"tasks/{_checked(task_id)}/{action}")
        return TaskInfo.model_validate(response.json())

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachable(
                f"Could not reach the Jupyter server at {self.server.url} "
                f"(found via {self.server.source}): {exc}"
            ) from exc
        if response.status_code < 400:
            return response
        content_type = response.headers.get("content-type", "")
        if response.status_code == 404 and "json" not in content_type:
            # Jupyter's own HTML 404: the server runs, but without this extension.
            raise ServerNotFound(
                f"The Jupyter server at {self.server.url} does not serve /api/deepresearch/ "
                f"(found via {self.server.source}). {ENABLE_HINT}"
            )
        raise error_for_status(response.status_code, response_message(response))


def settings_body(name: str, value: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    """A settings section as JSON: only the fields given, so server defaults still apply."""
    if isinstance(value, BaseModel):
        items: Mapping[str, Any] = {k: getattr(value, k) for k in value.model_fields_set}
    elif isinstance(value, Mapping):
        items = value
    else:
        raise TypeError(f"{name}= must be a dict or a settings model, not {type(value).__name__}")
    return {str(k): _plain(v) for k, v in items.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _checked(task_id: str) -> str:
    if not is_task_id(task_id):
        raise ValueError(f"Not a task id ({TASK_ID_RULE}): {task_id!r}")
    return task_id


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
