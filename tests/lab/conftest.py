"""Fixtures for the browser tests: a real `jupyter lab` and Debian's Chromium via Playwright."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_server import LabServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EXTENSION_DIR = Path(sys.prefix, "share", "jupyter", "labextensions", "jupyter-deepresearch")
SETTINGS = {"pipeline": "dr_testing.pipelines:stepped", "flush_interval": 0.05}


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return "chromium is not installed (apt-get install chromium); .ci/run installs it"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (the test extra installs it)"
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        return "jupyterlab is not installed (the test extra installs it)"
    if not (EXTENSION_DIR / "package.json").exists() and shutil.which("node") is None:
        return "the JupyterLab extension was not built: Node.js is not installed"
    return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    assert (EXTENSION_DIR / "package.json").exists(), (
        f"Node.js is installed but the JupyterLab extension is not in {EXTENSION_DIR}: "
        "`pip install -e .` should have built and installed it"
    )
    server = LabServer(tmp_path_factory.mktemp("lab"), settings=SETTINGS).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(lab: LabServer) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Any, lab: LabServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    yield page
    if request.node.stash.get(FAILED, False):
        # What the browser showed and said, for a failure that only a screen explains.
        folder = Path(tempfile.gettempdir(), "deepresearch-lab-failures")
        folder.mkdir(exist_ok=True)
        shot = folder / f"{request.node.name}.png"
        page.screenshot(path=str(shot))
        print(f"screenshot: {shot}\nbrowser console:\n" + "\n".join(console[-40:]))
        print(f"server log ({lab.log_path}):\n{lab.log()[-4000:]}")
    context.close()


# pytest-jupyter's autouse fixtures close "the" asyncio loop after each test; here that is the
# loop Playwright's sync API runs for the whole module, and no in-process server exists.
@pytest.fixture
def jp_asyncio_loop() -> None:
    """No loop of pytest-jupyter's in the browser tests."""


@pytest.fixture
def jp_server_cleanup() -> None:
    """No in-process Jupyter server to clean up in the browser tests."""
