"""The front end's own unit tests (jest, JupyterLab's convention), run from the Python suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LABEXTENSION = Path(__file__).resolve().parents[2] / "labextension"


def test_the_panel_model_and_report_pass_their_jest_tests() -> None:
    # The environment's own jlpm (beside this Python) when it is not on PATH.
    jlpm = shutil.which("jlpm") or shutil.which("jlpm", path=str(Path(sys.executable).parent))
    if shutil.which("node") is None or jlpm is None:
        pytest.skip("Node.js or jlpm (from jupyterlab) is not installed")
    if not (LABEXTENSION / "node_modules").exists():
        # `pip install -e .` installs them while building the extension; do it here otherwise.
        subprocess.run([jlpm, "install", "--immutable"], cwd=LABEXTENSION, check=True)
    run = subprocess.run(
        [jlpm, "test", "--ci"], cwd=LABEXTENSION, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout + run.stderr
