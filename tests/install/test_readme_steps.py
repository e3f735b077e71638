"""The README's set-up steps, run as written, in a fresh virtual environment.

Regression: the README once said `jupyter server extension enable jupyter_deepresearch.extension`
for editable installs, which jupyter_server 2.21 refuses (it only toggles extensions some config
file already names) while writing nothing, so every route answered 404.
"""

from __future__ import annotations

import os
import re
import subprocess
import sysconfig
import time
import venv
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


@pytest.fixture
def fresh_env(tmp_path: Path) -> Path:
    """A new venv that sees this suite's packages (the editable install included) and whose
    `sys.prefix` holds no Jupyter configuration yet, as after `pip install -e .`."""
    prefix = tmp_path / "venv"
    venv.create(prefix, with_pip=False)
    [site_dir] = (prefix / "lib").glob("python*/site-packages")
    suite_site = sysconfig.get_paths()["purelib"]
    (site_dir / "_suite_packages.pth").write_text(f"import site; site.addsitedir({suite_site!r})\n")
    return prefix


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


def test_the_development_steps_enable_the_extension_of_an_editable_install(
    fresh_env: Path, tmp_path: Path
) -> None:
    [enable] = [line for line in readme_commands("Development") if CONFIG_NAME in line]
    assert health_status(fresh_env, tmp_path / "before") == 404  # what the old step left

    env = {**os.environ, "PATH": f"{fresh_env / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", "-ec", enable], cwd=REPO, env=env, check=True)

    assert (fresh_env / "etc/jupyter/jupyter_server_config.d" / CONFIG_NAME).is_file()
    assert health_status(fresh_env, tmp_path / "after") == 200


def test_set_up_gives_the_same_enable_step_as_development() -> None:
    """The editable-install note under Set-up and the Development section agree."""
    setup = [line for line in readme_commands("Set-up") if CONFIG_NAME in line]
    development = [line for line in readme_commands("Development") if CONFIG_NAME in line]
    assert setup == development and len(setup) == 1


def test_the_readme_test_command_uses_the_pinned_test_environment() -> None:
    [command] = [line for line in readme_commands("Set-up") if "pytest" in line]
    assert command.startswith('pip install -e ".[test]" -c requirements/test.txt && ')
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert command in ci, ".ci/run must run the README's test command exactly"
