"""Running `jupyter-deepresearch` (the installed console script) as a real subprocess."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dr_testing.servers import TESTS_DIR, ServerProcess

SCRIPT = str(Path(sys.executable).with_name("jupyter-deepresearch"))


def cli_env(runtime_dir: Path, **extra: str) -> dict[str, str]:
    """The environment minus anything that points at a server, with its own runtime folder
    (so no other Jupyter server on this machine is found)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
    env["JUPYTER_RUNTIME_DIR"] = str(runtime_dir)
    env["JUPYTER_CONFIG_DIR"] = str(runtime_dir / "config")
    env.update(extra)
    return env


def server_args(server: ServerProcess) -> list[str]:
    """`--url`/`--token` of a `ServerProcess`."""
    return [f"--url=http://127.0.0.1:{server.port}/", f"--token={server.token}"]


def run(
    args: list[str], env: dict[str, str], *, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the command to its end; its exit status and output."""
    return subprocess.run(
        [SCRIPT, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


class Running:
    """The command started in the background; its stderr read line by line as it comes."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [SCRIPT, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr_lines: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line)
            self._lines.put(line)

    def wait_for_line(self, text: str, timeout: float = 60) -> str:
        """The first stderr line (from now on) containing `text`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None and self._lines.empty():
                    break
                continue
            if text in line:
                return line
        raise AssertionError(f"no stderr line with {text!r}; stderr:\n{''.join(self.stderr_lines)}")

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        """Wait for the exit: (status, stdout, stderr)."""
        assert self.process.stdout is not None
        stdout = self.process.stdout.read()
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code, stdout, "".join(self.stderr_lines)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def run_cli(
    workdir: Path, *args: str, settings: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """`jupyter deepresearch ARGS` with its own Jupyter folders; `settings` go into its
    `jupyter_server_config.json` (section `DeepResearchApp`), as a server's would."""
    config_dir = workdir / "cli-config"
    config_dir.mkdir(parents=True, exist_ok=True)
    config = {"DeepResearchApp": settings or {}}
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(config))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "JUPYTER_DATA_DIR": str(workdir / "cli-data"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "cli-runtime"),
        "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("TASK_STORAGE_DIR", None)
    command = [sys.executable, "-m", "jupyter_deepresearch.extension.worker", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
