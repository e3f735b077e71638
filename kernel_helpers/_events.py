"""Reading a task's SSE stream: resume by `Last-Event-ID`, back off, stop on 204 or the end.

`EventStream` is an iterator usable from any thread; `close()` from another thread ends it
promptly, even while it waits for the next byte.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx_sse

from ._errors import ServiceUnavailableError, error_for_status
from ._state import TERMINAL, TaskEvent

# The server sends a keepalive comment at least every 15 s; silence for longer is a dead link.
READ_TIMEOUT = 45.0


@dataclass
class Backoff:
    """Delays between reconnects: the server's `retry` hint first, then exponential, capped."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 15.0
    jitter: float = 0.1

    def delay(self, failures: int, hint: float | None) -> float:
        """Seconds to wait before attempt number `failures` (1 = the first reconnect)."""
        base = hint if hint is not None else self.initial
        value = min(self.maximum, base * self.factor ** max(0, failures - 1))
        return value * (1 + random.uniform(0, self.jitter))


class EventStream:
    """Events of one task with id > `after`; reconnects until the task is terminal.

    Retries network errors, 5xx answers and streams that end early (a server restart);
    ends on 204, on a terminal `status` event followed by the end of the stream, or `close()`.
    Raises `ResearchAPIError` for 4xx answers (task deleted, token refused).
    """

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        *,
        after: int = 0,
        follow: bool = True,
        headers: dict[str, str] | None = None,
        backoff: Backoff | None = None,
        max_failures: int | None = None,
        on_reconnect: Callable[[int, BaseException | None], None] | None = None,
    ) -> None:
        self.url = url
        self.last_event_id = after
        self.follow = follow
        self.connects = 0  # connections opened, for tests and diagnostics
        self._client = client
        self._headers = dict(headers or {})
        self._backoff = backoff or Backoff()
        self._max_failures = max_failures
        self._on_reconnect = on_reconnect
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._response: httpx.Response | None = None
        self._retry_hint: float | None = None

    @property
    def closed(self) -> bool:
        """True once `close()` was called."""
        return self._closed.is_set()

    def close(self) -> None:
        """Stop: wakes a reader blocked on the socket, and no event is yielded afterwards."""
        self._closed.set()
        with self._lock:
            response = self._response
        if response is not None:
            _shutdown_socket(response)

    def __iter__(self) -> Iterator[TaskEvent]:
        failures = 0
        while not self._closed.is_set():
            error: BaseException | None = None
            try:
                for event in self._connect_once():
                    failures = 0
                    yield event
                    if self._closed.is_set():
                        return
                # The stream ended cleanly without a terminal status: the server went away.
                if not self.follow:
                    return
            except _Finished:
                return
            except ServiceUnavailableError as exc:
                error = exc
            except (httpx.TransportError, httpx_sse.SSEError) as exc:
                if self._closed.is_set():
                    return
                error = exc
            failures += 1
            if self._max_failures is not None and failures > self._max_failures:
                if error is not None:
                    raise error
                return
            if self._on_reconnect is not None:
                self._on_reconnect(failures, error)
            if self._closed.wait(self._backoff.delay(failures, self._retry_hint)):
                return

    def _connect_once(self) -> Iterator[TaskEvent]:
        headers = dict(self._headers)
        params: dict[str, str] = {}
        if self.last_event_id:
            headers["Last-Event-ID"] = str(self.last_event_id)
        if not self.follow:
            params["follow"] = "false"
        timeout = httpx.Timeout(10.0, read=READ_TIMEOUT)
        self.connects += 1
        with httpx_sse.connect_sse(
            self._client, "GET", self.url, headers=headers, params=params, timeout=timeout
        ) as source:
            response = source.response
            if response.status_code == 204:
                raise _Finished
            if response.status_code >= 400:
                response.read()
                raise error_for_status(response.status_code, response_message(response))
            with self._lock:
                self._response = response
            if self._closed.is_set():
                raise _Finished
            terminal = False
            try:
                for sse in source.iter_sse():
                    if sse.retry is not None:
                        self._retry_hint = sse.retry / 1000
                    if not sse.data:
                        continue
                    event = _parse(sse)
                    if event is None:
                        continue
                    self.last_event_id = max(self.last_event_id, event.id)
                    if event.type == "status":
                        terminal = event.data.get("status") in TERMINAL
                    yield event
            finally:
                with self._lock:
                    self._response = None
            if terminal or not self.follow:
                raise _Finished


class _Finished(Exception):
    """Internal: the stream has nothing more to give."""


def _parse(sse: httpx_sse.ServerSentEvent) -> TaskEvent | None:
    try:
        data: Any = json.loads(sse.data)
        event_id = int(sse.id)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return TaskEvent(event_id, sse.event, data)


def response_message(response: httpx.Response) -> str:
    """The server's `{"message"}` text, or a short description of a non-JSON answer."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    reason = response.reason_phrase or "error"
    return f"{reason} from {response.request.method} {response.request.url}"


def _shutdown_socket(response: httpx.Response) -> None:
    # Closing a socket does not wake a thread blocked in recv() on it; shutting it down does.
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
