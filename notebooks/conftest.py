"""nbval harness: one real Jupyter server with the extension for every notebook of the run.

The server starts before the first notebook's kernel (nbval starts a kernel when it sets up a
notebook), and the kernels inherit `JUPYTER_DEEPRESEARCH_URL`/`_TOKEN` from this process, just
as kernels launched by the server itself would.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from nb_harness import NotebookServer

_server: NotebookServer | None = None
_saved_env: dict[str, str | None] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    global _server
    if _server is None and str(item.path).endswith(".ipynb"):
        _server = NotebookServer().start()
        for key, value in _server.kernel_env().items():
            _saved_env[key] = os.environ.get(key)
            os.environ[key] = value


def pytest_sessionfinish(session: pytest.Session, exitstatus: Any) -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None
    for key, value in _saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
