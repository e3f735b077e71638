"""The notebooks' harness: a real Jupyter server with the extension, for nbval and for authors.

`pytest --nbval notebooks` starts one server through `conftest.py`; `python notebooks/nb_harness.py`
starts one and re-executes every notebook in place (run it after editing a notebook, then review
the saved outputs: nbval compares against them).

The server runs the real offline pipeline, paced: each progress event waits `NB_PACE_SECONDS`
(default 0.2 s) the way a real language model would, so that the notebooks can pause, cancel and
reattach in the middle of a task instead of after it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
NOTEBOOKS = ("quickstart.ipynb", "reattach.ipynb", "providers.ipynb", "manage-tasks.ipynb")


class _Paced:
    """A `ResearchContext` whose progress events take time, like a model writing them."""

    def __init__(self, ctx: Any, seconds: float) -> None:
        self._ctx = ctx
        self._seconds = seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    async def progress(self, step: str, percentage: int, message: str | None = None) -> None:
        await asyncio.sleep(self._seconds)
        await self._ctx.progress(step, percentage, message)


async def paced_research(ctx: Any) -> Any:
    """The real pipeline (`run_research`), paced by `NB_PACE_SECONDS`."""
    from jupyter_deepresearch.extension.research import run_research

    return await run_research(_Paced(ctx, float(os.environ.get("NB_PACE_SECONDS", "0.2"))))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NotebookServer:
    """`jupyter server` with the extension on a free loopback port, in a temporary folder."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="dr-notebooks-"))
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def kernel_env(self) -> dict[str, str]:
        """What a kernel needs to find this server (and to print text instead of widgets)."""
        return {
            "JUPYTER_DEEPRESEARCH_URL": self.url,
            "JUPYTER_DEEPRESEARCH_TOKEN": self.token,
            # nbval and nbclient have no widget front end.
            "JUPYTER_DEEPRESEARCH_DISPLAY": "text",
        }

    def start(self, timeout: float = 120.0) -> NotebookServer:
        for sub in ("config", "data", "runtime", "root", "tasks"):
            (self.workdir / sub).mkdir()
        config = {
            "ServerApp": {"jpserver_extensions": {"jupyter_deepresearch.extension": True}},
            "DeepResearchApp": {
                "storage_dir": str(self.workdir / "tasks"),
                "pipeline": "nb_harness:paced_research",
                "flush_interval": 0.1,
            },
        }
        (self.workdir / "config" / "jupyter_server_config.json").write_text(json.dumps(config))
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.workdir / "config"),
            "JUPYTER_DATA_DIR": str(self.workdir / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.workdir / "runtime"),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p
            ),
        }
        for name in ("TASK_STORAGE_DIR", "JUPYTER_DEEPRESEARCH_URL", "JUPYTER_DEEPRESEARCH_TOKEN"):
            env.pop(name, None)
        command = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.workdir / 'root'}",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"token {self.token}"}
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the notebook server exited early:\n{self.log()}")
            try:
                response = httpx.get(self.url + "api/deepresearch/health", headers=headers)
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the notebook server was not ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)


def regenerate(names: list[str]) -> None:
    """Execute notebooks in place against a fresh server, as nbval will, saving their outputs."""
    import nbformat
    from nbclient import NotebookClient

    server = NotebookServer().start()
    saved = {k: os.environ.get(k) for k in server.kernel_env()}
    os.environ.update(server.kernel_env())
    try:
        for name in names or NOTEBOOKS:
            path = HERE / name
            notebook = nbformat.read(path, as_version=4)
            skipped = {}
            for index, cell in enumerate(notebook.cells):
                # nbval never runs these; neither do we (they need a service outside the machine).
                if cell.cell_type == "code" and cell.source.lstrip().startswith("# NBVAL_SKIP"):
                    skipped[index] = cell.source
                    cell.source = ""
            client = NotebookClient(
                notebook,
                timeout=300,
                record_timing=False,  # no timestamps in the saved notebooks
                resources={"metadata": {"path": str(HERE)}},
            )
            client.execute()
            for index, source in skipped.items():
                cell = notebook.cells[index]
                cell.source, cell.outputs, cell.execution_count = source, [], None
            nbformat.write(notebook, path)
            print(f"executed {name}")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


if __name__ == "__main__":
    regenerate(sys.argv[1:])
