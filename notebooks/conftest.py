"""nbval harness: real Jupyter servers with the extension for the notebooks of the run.

One server, started before the first notebook's kernel (nbval starts a kernel when it sets up a
notebook), serves every notebook; the notebooks in `nb_harness.REPLAYED` get a second one with
`replay_only` over `recordings/`. Kernels inherit `JUPYTER_DEEPRESEARCH_URL`/`_TOKEN` from this
process, just as kernels launched by the server itself would, so each notebook's kernel is
pointed at its server before it starts.

While a replayed notebook runs, a listener holds its model's port: a cell during which anything
connects there fails, and so does the session, because no provider may be contacted in CI.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from nb_harness import MODEL_PORT, REPLAYED, NotebookServer

from dr_testing.tripwire import Tripwire

_servers: dict[bool, NotebookServer] = {}
_saved_env: dict[str, str | None] = {}
_tripwire: Tripwire | None = None


def _replayed(item: pytest.Item) -> bool:
    return item.path.name in REPLAYED


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not str(item.path).endswith(".ipynb"):
        return
    replay = _replayed(item)
    if replay:
        _listen_on_model_port()
    server = _servers.get(replay)
    if server is None:
        server = _servers[replay] = NotebookServer(replay=replay).start()
    for key, value in server.kernel_env().items():
        _saved_env.setdefault(key, os.environ.get(key))
        os.environ[key] = value


def _listen_on_model_port() -> None:
    global _tripwire
    if _tripwire is not None:
        return
    try:
        _tripwire = Tripwire(MODEL_PORT)
    except OSError as error:
        raise RuntimeError(
            f"Port {MODEL_PORT} (the replayed notebooks' model URL) is in use ({error}): "
            "this run could not prove that no provider is contacted. Stop what listens there "
            "(a local Ollama?) or leave the replayed notebooks out."
        ) from None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if call.when == "call" and _replayed(item) and _tripwire is not None and _tripwire.connections:
        report.outcome = "failed"
        report.longrepr = (
            f"A replayed notebook contacted its model: {_tripwire.connections} connection(s) "
            f"to 127.0.0.1:{MODEL_PORT}. Under replay_only no provider may be called."
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: Any) -> None:
    global _tripwire
    for server in _servers.values():
        server.stop()
    _servers.clear()
    if _tripwire is not None:
        if _tripwire.connections:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        _tripwire.close()
        _tripwire = None
    for key, value in _saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
