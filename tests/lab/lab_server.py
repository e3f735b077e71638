"""A real `jupyter lab` on 127.0.0.1 with the extension, a token and folders of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import nbformat

from dr_testing.servers import ServerProcess

# Settings that keep Lab quiet in tests: no news prompt, no update check (both are toasts that
# would sit among the notifications under test).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


class LabServer(ServerProcess):
    """`python -m jupyterlab` with our server extension enabled and its own config/data dirs."""

    app_module = "jupyterlab"

    def __init__(self, workdir: Path, settings: dict[str, Any] | None = None) -> None:
        env = {
            "JUPYTERLAB_SETTINGS_DIR": str(workdir / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "workspaces"),
        }
        super().__init__(workdir, workdir / "tasks", settings=settings, env=env, name="lab")
        self.root = workdir / "root"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def lab_url(self, path: str = "") -> str:
        """The URL that opens Lab (at a notebook, if given) with a fresh layout, logged in."""
        return f"{self.base}lab/tree/{path}?reset&token={self.token}"

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, headers={"Authorization": f"token {self.token}"}, timeout=30
        )

    def start(self, timeout: float = 90.0) -> LabServer:
        (self.workdir / "workspaces").mkdir(parents=True, exist_ok=True)
        for name, value in LAB_SETTINGS.items():
            path = self.workdir / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        super().start(timeout)
        return self

    def notebook(self, name: str, *sources: str) -> str:
        """Write a notebook of code cells into the root; returns its path for `lab_url`."""
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
        nbformat.write(nb, self.root / name)
        return name
