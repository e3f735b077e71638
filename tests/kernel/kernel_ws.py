"""Driving a kernel as JupyterLab does: REST to start and restart it, the websocket for cells."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx
import websocket


@dataclass
class CellResult:
    """What one executed cell produced."""

    stdout: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None

    def lines(self) -> list[str]:
        return self.stdout.splitlines()


class KernelSession:
    """A kernel started through the server's REST API and driven over its websocket."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.token = token
        self.http = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"token {token}"}, timeout=60
        )
        self.kernel_id = ""
        self.session = uuid.uuid4().hex
        self._ws: websocket.WebSocket | None = None
        self.comm_messages: list[dict[str, Any]] = []  # widget traffic, from any thread

    def start(self) -> KernelSession:
        response = self.http.post("api/kernels", json={"name": "python3"})
        response.raise_for_status()
        self.kernel_id = response.json()["id"]
        self._connect()
        return self

    def restart(self) -> None:
        """Restart the kernel process (a new process, the same kernel id)."""
        self._disconnect()
        self.http.post(f"api/kernels/{self.kernel_id}/restart").raise_for_status()
        self._connect()

    def shutdown(self) -> None:
        """Shut the kernel down and close the websocket."""
        self._disconnect()
        if self.kernel_id:
            self.http.delete(f"api/kernels/{self.kernel_id}")
            self.kernel_id = ""

    def close(self) -> None:
        self.shutdown()
        self.http.close()

    def execute(self, code: str, timeout: float = 120.0) -> CellResult:
        """Run a cell; return its stdout, rich outputs and error once the kernel is idle."""
        assert self._ws is not None
        msg_id = uuid.uuid4().hex
        self._ws.send(json.dumps(self._message("execute_request", msg_id, code)))
        result = CellResult()
        idle = replied = False
        deadline = time.monotonic() + timeout
        while not (idle and replied):
            self._ws.settimeout(max(0.1, deadline - time.monotonic()))
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell did not finish within {timeout}s: {code!r}")
            msg = self._receive()
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                result.stdout += content["text"]
            elif kind in ("display_data", "execute_result"):
                result.outputs.append(content["data"])
            elif kind == "error":
                result.error = content
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
            elif kind == "execute_reply":
                replied = True
        return result

    def drain(self, seconds: float) -> None:
        """Read (and record) whatever the kernel sends during `seconds`, outside any cell."""
        assert self._ws is not None
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._ws.settimeout(left)
            try:
                self._receive()
            except websocket.WebSocketTimeoutException:
                return

    def widget_updates(self) -> list[dict[str, Any]]:
        """The `state` of every widget `update` the kernel sent to the front end."""
        return [
            m["content"]["data"]["state"]
            for m in self.comm_messages
            if m["msg_type"] == "comm_msg" and m["content"]["data"].get("method") == "update"
        ]

    def _receive(self) -> dict[str, Any]:
        assert self._ws is not None
        msg: dict[str, Any] = json.loads(self._ws.recv())
        if msg.get("msg_type", "").startswith("comm_"):
            self.comm_messages.append(msg)
        return msg

    def run(self, code: str, timeout: float = 120.0) -> CellResult:
        """`execute`, failing the test with the kernel's traceback if the cell raised."""
        result = self.execute(code, timeout)
        if result.error is not None:
            trace = "\n".join(result.error.get("traceback", []))
            raise AssertionError(f"cell raised {result.error['ename']}:\n{trace}")
        return result

    def _connect(self) -> None:
        url = self.base_url.replace("http://", "ws://", 1)
        url += f"api/kernels/{self.kernel_id}/channels?session_id={self.session}"
        deadline = time.monotonic() + 60
        while True:
            try:
                self._ws = websocket.create_connection(
                    url, header=[f"Authorization: token {self.token}"], timeout=30
                )
                break
            except (OSError, websocket.WebSocketException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        # The kernel answers on the shell channel once it is ready for cells.
        self.run("pass", timeout=60)

    def _disconnect(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def _message(self, msg_type: str, msg_id: str, code: str) -> dict[str, Any]:
        return {
            "header": {
                "msg_id": msg_id,
                "msg_type": msg_type,
                "username": "test",
                "session": self.session,
                "date": datetime.now(timezone.utc).isoformat(),
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            "channel": "shell",
            "buffers": [],
        }
