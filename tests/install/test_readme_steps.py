"""The README's set-up steps: an install enables the extension; CI runs the test command.

Regression: an editable install did not install the config file that enables the server
extension, and the README's `jupyter server extension enable jupyter_deepresearch.extension`
cannot make up for it on jupyter_server 2.21 (it only toggles extensions some config file
already names) while writing nothing, so every route answered 404.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dr_testing.servers import free_port, terminate

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
CONFIG_NAME = "jupyter_deepresearch.json"


def readme_commands(section: str) -> list[str]:
    """The lines of the bash blocks under a README `##` heading."""
    text = README.read_text()
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README has no section {section!r}"
    blocks = re.findall(r"```bash\n(.*?)```", match.group(1), re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def health_status(prefix: Path, workdir: Path) -> int:
    """Start `jupyter server` from the venv with no user configuration; GET our health route."""
    for sub in ("config", "data", "runtime", "root"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(workdir / "config"),
        "JUPYTER_DATA_DIR": str(workdir / "data"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "TASK_STORAGE_DIR": str(workdir / "tasks"),
    }
    env.pop("JUPYTER_CONFIG_PATH", None)
    port = free_port()
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(prefix / "bin" / "python"),
            "-m",
            "jupyter_server",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            "--IdentityProvider.token=readme",
            f"--ServerApp.root_dir={workdir / 'root'}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    url = f"http://127.0.0.1:{port}/api/deepresearch/health"

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError((workdir / "server.log").read_text())
            try:
                headers = {"Authorization": "token readme"}
                return httpx.get(url, headers=headers, timeout=2).status_code
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"no answer within 60 s:\n{(workdir / 'server.log').read_text()}")
    finally:
        terminate(process)


def test_the_install_of_this_environment_enables_the_extension(tmp_path: Path) -> None:
    """The suite runs on `pip install -e` (the README's test command): that install alone,
    with no configuration of a user's, makes a server answer our routes."""
    installed = Path(sys.prefix, "etc/jupyter/jupyter_server_config.d", CONFIG_NAME)
    assert installed.is_file(), "pip install did not install the config that enables us"
    assert json.loads(installed.read_text()) == json.loads(
        (REPO / "jupyter-config/jupyter_server_config.d" / CONFIG_NAME).read_text()
    )
    assert health_status(Path(sys.prefix), tmp_path) == 200


def test_the_readme_test_command_uses_the_pinned_test_environment() -> None:
    [command] = [line for line in readme_commands("Set-up") if "pytest" in line]
    assert command.startswith('pip install -e ".[test]" -c requirements/test.txt && ')
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert command in ci, ".ci/run must run the README's test command exactly"


def test_a_regular_install_ships_every_package() -> None:
    # `pip install .` copies only the packages pyproject lists (the editable install the suite
    # uses maps whole folders, so a missing one shows only on users' machines): the task
    # manager's own package was once left out, and the extension did not load.
    text = (REPO / "pyproject.toml").read_text()
    mapped = dict(re.findall(r'^"(jupyter_deepresearch\.[\w.]+)" = "([\w/]+)"$', text, re.M))
    on_disk = {
        init.parent.relative_to(REPO).as_posix()
        for top in ("extension", "kernel_helpers")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert on_disk <= set(mapped.values()), on_disk - set(mapped.values())
    listed = re.search(r"^packages = \[(.*?)\]", text, re.M | re.S)
    assert listed is not None
    assert set(re.findall(r'"([\w.]+)"', listed.group(1))) == set(mapped)
