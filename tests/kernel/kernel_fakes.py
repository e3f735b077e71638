"""A scripted loopback HTTP server for the kernel client's tests (not the real extension).

It speaks just enough of the extension's wire format (JSON routes, chunked SSE) to drive the
client through the cases a real server cannot be made to produce on cue: a connection cut
mid-stream, a 503, a port that stops answering and comes back. The real server is exercised
end to end in `test_kernel_e2e.py`.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TASK_ID = "0123456789abcdef0123456789abcdef"
DROP = "drop"  # cut the connection without ending the chunked body (a network failure)
END = "end"  # end the body cleanly (what a server does when it stops or the task is over)


def sse(event_id: int, type: str, data: dict[str, Any]) -> str:
    """One event in the wire format."""
    return f"id: {event_id}\nevent: {type}\ndata: {json.dumps(data)}\n\n"


def task_info(task_id: str = TASK_ID, **fields: Any) -> dict[str, Any]:
    """A TaskInfo JSON body with sensible defaults."""
    now = datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat()
    info: dict[str, Any] = {
        "task_id": task_id,
        "status": "queued",
        "step": "",
        "percentage": 0,
        "message": "",
        "created_at": now,
        "updated_at": now,
        "request": {"query": "What is asyncio?"},
        "last_event_id": 0,
        "attempts": 0,
        "owner": None,
        "result": None,
        "error": None,
    }
    info.update(fields)
    return info


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    """A canned JSON answer."""

    status: int
    body: Any = None
    content_type: str = "application/json"


Route = Callable[[Recorded], Reply]


@dataclass
class FakeServer:
    """Loopback server: JSON `routes` by (method, path) and scripted SSE connections.

    `sse_scripts` holds one list per expected connection: strings are written as chunks,
    `DROP` cuts the connection, `END` ends it cleanly, `("sleep", s)` pauses, `("status", n)`
    answers that connection with a bare status code instead of a stream, and
    `("wait", event)` blocks until the test sets the threading.Event.
    """

    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    sse_scripts: list[list[Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    sse_connections: queue.Queue[Recorded] = field(default_factory=queue.Queue)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> FakeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                server._dispatch(self)

            do_GET = do_POST = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (the port is kept so `start()` can come back on it)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path for r in self.requests if method is None or r.method == method]

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        record = Recorded(
            handler.command,
            split.path,
            parse_qs(split.query),
            {k.lower(): v for k, v in handler.headers.items()},
            body,
        )
        self.requests.append(record)
        if split.path.endswith("/events"):
            self.sse_connections.put(record)
            self._stream(handler)
            return
        route = self.routes.get((handler.command, split.path))
        reply = route(record) if route else Reply(404, "<html>404: Not Found</html>", "text/html")
        payload = b""
        if reply.body is not None:
            text = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
            payload = text.encode()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        script = self.sse_scripts.pop(0) if self.sse_scripts else [END]
        if script and isinstance(script[0], tuple) and script[0][0] == "status":
            code = script[0][1]
            handler.send_response(code)
            body = b"" if code == 204 else json.dumps({"message": f"scripted {code}"}).encode()
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("Content-Type", "application/json")
            handler.end_headers()
            handler.wfile.write(body)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            for step in script:
                if step == DROP:
                    handler.close_connection = True
                    handler.wfile.flush()
                    handler.connection.shutdown(2)
                    return
                if step == END:
                    handler.wfile.write(b"0\r\n\r\n")
                    handler.wfile.flush()
                    handler.close_connection = True
                    return
                if isinstance(step, tuple):
                    kind, value = step
                    if kind == "sleep":
                        threading.Event().wait(value)
                    elif kind == "wait":
                        value.wait(30)
                    continue
                data = step.encode()
                handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                handler.wfile.flush()
            handler.wfile.write(b"0\r\n\r\n")
            handler.close_connection = True
        except OSError:
            handler.close_connection = True


RESUMABLE = ("paused", "failed", "cancelled")
CANCELLABLE = ("queued", "running", "paused")


def task_routes(server: FakeServer, info: dict[str, Any], *, created: bool = True) -> None:
    """Routes of one task: submit (201 then 200), get, pause/resume/cancel, delete."""
    state: dict[str, Any] = {"info": dict(info), "created": created}
    base = f"/api/deepresearch/tasks/{info['task_id']}"

    def submit(_: Recorded) -> Reply:
        status = 201 if state["created"] else 200
        state["created"] = False
        return Reply(status, state["info"])

    def move(verb: str, to: str, allowed: tuple[str, ...]) -> Route:
        def action(_: Recorded) -> Reply:
            status = state["info"]["status"]
            if status not in allowed:
                return Reply(409, {"message": f"Cannot {verb} a task that is {status}."})
            # The move is itself an event, so the answer is as new as any event before it.
            last = state["info"]["last_event_id"] + 1
            state["info"] = {**state["info"], "status": to, "last_event_id": last}
            return Reply(200, state["info"])

        return action

    server.routes.update(
        {
            ("POST", "/api/deepresearch/tasks"): submit,
            ("GET", base): lambda _: Reply(200, state["info"]),
            ("POST", base + "/pause"): move("pause", "paused", ("queued", "running")),
            ("POST", base + "/resume"): move(
                "resume", "running", ("paused", "failed", "cancelled")
            ),
            ("POST", base + "/cancel"): move(
                "cancel", "cancelled", ("queued", "running", "paused")
            ),
            ("DELETE", base): lambda _: Reply(204),
            ("GET", "/api/deepresearch/tasks"): lambda _: Reply(200, {"tasks": [state["info"]]}),
        }
    )
