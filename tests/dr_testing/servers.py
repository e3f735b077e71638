"""Real `jupyter server` subprocesses on loopback, for crash, restart and multi-process tests."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

TESTS_DIR = Path(__file__).resolve().parent.parent
EXTENSION = "jupyter_deepresearch.extension"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def terminate(process: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> int | None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; the return code."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return process.returncode


class ServerProcess:
    """One Jupyter server with the extension, its own config/data/runtime folders and token."""

    # `GET health` answers that mean "started" (a subclass may accept a store still coming back).
    ready_codes: frozenset[int] = frozenset({200})
    app_module = "jupyter_server"  # `python -m` this: a subclass may run `jupyterlab`

    def __init__(
        self,
        workdir: Path,
        storage_dir: Path,
        *,
        settings: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        name: str = "server",
    ) -> None:
        self.workdir = workdir
        self.storage_dir = storage_dir
        self.settings = settings or {}
        self.extra_env = env or {}
        self.name = name
        self.token = secrets.token_hex(16)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/deepresearch/"

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"token {self.token}"}, timeout=timeout
        )

    def start(self, timeout: float = 60.0) -> ServerProcess:
        config_dir = self.workdir / "config"
        for sub in ("config", "data", "runtime", "root"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        config = {
            "ServerApp": {"jpserver_extensions": {EXTENSION: True}},
            "DeepResearchApp": {"storage_dir": str(self.storage_dir), **self.settings},
        }
        (config_dir / "jupyter_server_config.json").write_text(json.dumps(config))
        self.port = free_port()
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(config_dir),
            "JUPYTER_DATA_DIR": str(self.workdir / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.workdir / "runtime"),
            "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
            **self.extra_env,
        }
        # The store's folder and the kernel side's server address come from settings only.
        for name in ("TASK_STORAGE_DIR", "JUPYTER_DEEPRESEARCH_URL", "JUPYTER_DEEPRESEARCH_TOKEN"):
            env.pop(name, None)
        command = [
            sys.executable,
            "-m",
            self.app_module,
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.workdir / 'root'}",
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.client(timeout=2) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
                try:
                    if client.get("health").status_code in self.ready_codes:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, as in a power cut or an OOM kill."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, as a container runtime or JupyterHub stops a server."""
        return terminate(self.process, timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
