"""A real `jupyter lab` on 127.0.0.1 with the extension, a token and folders of its own."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import nbformat

from dr_testing.servers import TESTS_DIR, free_port, terminate

# Settings that keep Lab quiet in tests: no news prompt, no update check (both are toasts that
# would sit among the notifications under test).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


class LabServer:
    """`python -m jupyterlab` with our server extension enabled and its own config/data dirs."""

    def __init__(self, workdir: Path, settings: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.root = workdir / "root"
        self.settings = settings or {}
        self.token = secrets.token_hex(16)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "lab.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def lab_url(self, path: str = "") -> str:
        """The URL that opens Lab (at a notebook, if given) with a fresh layout, logged in."""
        return f"{self.url}lab/tree/{path}?reset&token={self.token}"

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"token {self.token}"}, timeout=30
        )

    def start(self, timeout: float = 90.0) -> LabServer:
        for sub in ("config", "data", "runtime", "root", "workspaces"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        for name, value in LAB_SETTINGS.items():
            path = self.workdir / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        config = {
            "ServerApp": {"jpserver_extensions": {"jupyter_deepresearch.extension": True}},
            "DeepResearchApp": {"storage_dir": str(self.workdir / "tasks"), **self.settings},
        }
        (self.workdir / "config" / "jupyter_server_config.json").write_text(json.dumps(config))
        self.port = free_port()
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.workdir / "config"),
            "JUPYTER_DATA_DIR": str(self.workdir / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.workdir / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(self.workdir / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.workdir / "workspaces"),
            "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
        }
        for name in ("TASK_STORAGE_DIR", "JUPYTER_DEEPRESEARCH_URL", "JUPYTER_DEEPRESEARCH_TOKEN"):
            env.pop(name, None)
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.api() as api:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"jupyter lab exited early:\n{self.log()}")
                try:
                    if api.get("api/deepresearch/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"jupyter lab not ready within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        terminate(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def notebook(self, name: str, *sources: str) -> str:
        """Write a notebook of code cells into the root; returns its path for `lab_url`."""
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
        nbformat.write(nb, self.root / name)
        return name
