"""A real `jupyter deepresearch worker` subprocess, for headless-worker tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dr_testing.servers import TESTS_DIR, terminate


class WorkerProcess:
    """`python -m jupyter_deepresearch.extension.worker worker ...` with its own Jupyter dirs."""

    def __init__(self, workdir: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.args = args
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "worker.log"

    def start(self) -> WorkerProcess:
        for sub in ("config", "data", "runtime", "root"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.workdir / "config"),
            "JUPYTER_DATA_DIR": str(self.workdir / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.workdir / "runtime"),
            "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
            **self.extra_env,
        }
        env.pop("TASK_STORAGE_DIR", None)
        command = [sys.executable, "-m", "jupyter_deepresearch.extension.worker", "worker"]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*command, *self.args],
            env=env,
            cwd=self.workdir / "root",
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        return self

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, as a container runtime stops it; the return code."""
        return terminate(self.process, timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
