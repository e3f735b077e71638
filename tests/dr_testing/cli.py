"""The `jupyter deepresearch` command as a real subprocess, with its own Jupyter folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dr_testing.servers import TESTS_DIR


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
