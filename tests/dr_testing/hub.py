"""A real JupyterHub on loopback for tests: configurable-http-proxy, users, services.

`Hub` writes a `jupyterhub_config.py` in its own folder and runs `jupyterhub` as a subprocess:
DummyAuthenticator users, `SimpleLocalProcessSpawner` (each user's server runs
`jupyterhub-singleuser` with our extension, its root folder the user's home under the hub's
folder), and whatever services a test asks for (the headless worker, the idle culler). Tests
drive it through the Hub's REST API with an admin service token, and reach users' servers
through the proxy with per-user API tokens, as a browser or a kernel would.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .servers import TESTS_DIR, free_port, terminate

PROXY_DIR = TESTS_DIR / "hub" / "proxy"
PROXY_COMMAND = PROXY_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
INSTALL_HINT = (
    "needs jupyterhub (pip install -e '.[test]') and configurable-http-proxy "
    "(npm ci --prefix tests/hub/proxy), as .ci/run installs them"
)


def hub_missing() -> str | None:
    """Why a hub cannot run here, or None."""
    if shutil.which("node") is None:
        return "Node.js not found; " + INSTALL_HINT
    if not PROXY_COMMAND.exists():
        return "configurable-http-proxy not installed; " + INSTALL_HINT
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        return "jupyterhub not installed; " + INSTALL_HINT
    return None


def bin_path(name: str) -> str:
    """A command of this test environment (beside its python)."""
    return str(Path(sys.executable).with_name(name))


class Hub:
    """One JupyterHub with its proxy, users' servers and services; `stop()` ends them all."""

    def __init__(
        self,
        folder: Path,
        *,
        users: tuple[str, ...] = ("alice", "bob"),
        server_settings: dict[str, Any] | None = None,
        services: list[dict[str, Any]] | None = None,
        roles: list[dict[str, Any]] | None = None,
        server_env: dict[str, str] | None = None,
    ) -> None:
        self.folder = folder
        self.users = users
        self.server_settings = server_settings or {}
        self.services = services or []
        self.roles = roles or []
        self.server_env = server_env or {}
        self.port = 0
        self.admin_token = secrets.token_hex(16)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "hub.log"
        self.user_tokens: dict[str, str] = {}

    # ----------------------------------------------------------------- set-up

    def home(self, user: str) -> Path:
        return self.folder / "homes" / user

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        """The hub's config and the users' servers' Jupyter config (our extension enabled)."""
        server_config = self.folder / "server-config"
        server_config.mkdir(parents=True, exist_ok=True)
        (server_config / "jupyter_server_config.json").write_text(
            json.dumps(
                {
                    "ServerApp": {
                        "jpserver_extensions": {"jupyter_deepresearch.extension": True},
                        "allow_root": True,
                    },
                    "DeepResearchApp": self.server_settings,
                }
            )
        )
        for user in self.users:
            self.home(user).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = {
            "ip": "127.0.0.1",
            "port": self.port,
            "hub_port": free_port(),
            "proxy_api_port": free_port(),
            "proxy": str(PROXY_COMMAND),
            "db": str(self.folder / "jupyterhub.sqlite"),
            "cookie_secret": str(self.folder / "cookie_secret"),
            "homes": str(self.folder / "homes") + "/{username}",
            "users": list(self.users),
            "singleuser": bin_path("jupyterhub-singleuser"),
            "server_config": str(server_config),
            "pythonpath": str(TESTS_DIR),
            "admin_token": self.admin_token,
            "services": self.services,
            "roles": self.roles,
            "server_env": self.server_env,
        }
        path = self.folder / "jupyterhub_config.py"
        path.write_text(HUB_CONFIG.format(settings=json.dumps(config)))
        return path

    def start(self, timeout: float = 60.0) -> Hub:
        config = self.write_config()
        log = self.log_path.open("ab")
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        for name in ("JUPYTER_DEEPRESEARCH_URL", "JUPYTER_DEEPRESEARCH_TOKEN", "TASK_STORAGE_DIR"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [bin_path("jupyterhub"), "-f", str(config)],
            cwd=self.folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self._wait(lambda: self.api("GET", "").status_code == 200, timeout, "the hub's API")
        return self

    def stop(self) -> None:
        """Stop every user's server through the hub, then the hub (services and proxy too)."""
        if self.process is not None and self.process.poll() is None:
            for user in self.users:
                with contextlib.suppress(httpx.HTTPError, AssertionError):
                    self.stop_server(user, wait=10)
        terminate(self.process, timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ----------------------------------------------------------------- the hub's API

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"token {self.admin_token}"}
        return httpx.request(
            method, f"{self.url}/hub/api/{path}", headers=headers, timeout=30, **kwargs
        )

    def start_server(self, user: str, timeout: float = 90.0) -> None:
        response = self.api("POST", f"users/{user}/server")
        assert response.status_code in (201, 202, 400), response.text  # 400: already running
        self._wait(lambda: self.server_ready(user), timeout, f"{user}'s server")

    def stop_server(self, user: str, wait: float = 30.0) -> None:
        """What the hub's "Stop My Server" does: the spawner stops the process (SIGINT first)."""
        response = self.api("DELETE", f"users/{user}/server")
        assert response.status_code in (202, 204, 400), response.text
        self._wait(lambda: not self.server_ready(user), wait, f"{user}'s server to stop")

    def server_ready(self, user: str) -> bool:
        model = self.api("GET", f"users/{user}").json()
        server = (model.get("servers") or {}).get("", {})
        return bool(server.get("ready"))

    def token(self, user: str) -> str:
        """An API token of `user` (as a kernel or a script of theirs would hold)."""
        if user not in self.user_tokens:
            response = self.api("POST", f"users/{user}/tokens", json={"note": "tests"})
            assert response.status_code in (200, 201), response.text
            self.user_tokens[user] = response.json()["token"]
        return self.user_tokens[user]

    def client(self, user: str, *, as_user: str | None = None) -> httpx.Client:
        """HTTP client for `user`'s deepresearch API through the proxy, with `as_user`'s token."""
        return httpx.Client(
            base_url=f"{self.url}/user/{user}/api/deepresearch/",
            headers={"Authorization": f"token {self.token(as_user or user)}"},
            timeout=30,
        )

    def _wait(self, probe: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the hub exited:\n{self.log()[-5000:]}")
            try:
                if probe():
                    return
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"{what} not ready within {timeout}s:\n{self.log()[-5000:]}")


HUB_CONFIG = """\
# Written by tests/dr_testing/hub.py: a JupyterHub on loopback for one test run.
import json

settings = json.loads({settings!r})
c = get_config()  # noqa: F821
c.JupyterHub.ip = settings["ip"]
c.JupyterHub.port = settings["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings["hub_port"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % settings["proxy_api_port"]
c.ConfigurableHTTPProxy.command = [settings["proxy"]]
c.JupyterHub.db_url = "sqlite:///" + settings["db"]
c.JupyterHub.cookie_secret_file = settings["cookie_secret"]
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = set(settings["users"])
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = settings["homes"]
c.Spawner.cmd = [settings["singleuser"]]
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.Spawner.environment = {{
    "JUPYTER_CONFIG_PATH": settings["server_config"],
    "PYTHONPATH": settings["pythonpath"],
    **settings["server_env"],
}}
c.JupyterHub.services = [{{"name": "tests", "api_token": settings["admin_token"]}}] + settings[
    "services"
]
c.JupyterHub.load_roles = [
    {{
        "name": "tests",
        "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"],
        "services": ["tests"],
    }}
] + settings["roles"]
"""
