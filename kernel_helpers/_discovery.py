"""Finding the Jupyter server that hosts the extension, in the order DESIGN.md fixes."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ._errors import ServerNotFound

ENV_URL = "JUPYTER_DEEPRESEARCH_URL"
ENV_TOKEN = "JUPYTER_DEEPRESEARCH_TOKEN"
HUB_DEFAULT_HOST = "http://127.0.0.1:8888"

ENABLE_HINT = (
    "Enable the server extension with `jupyter server extension enable "
    "jupyter_deepresearch.extension` (an editable install needs this; a normal `pip install "
    "jupyter-deepresearch` enables it), restart the Jupyter server, then restart this kernel. "
    "Or pass url= and token= explicitly, or set JUPYTER_DEEPRESEARCH_URL and "
    "JUPYTER_DEEPRESEARCH_TOKEN."
)


@dataclass(frozen=True)
class ServerInfo:
    """Where the extension is served: base URL (ending in `/`), token, and how it was found."""

    url: str
    token: str = field(default="", repr=False)
    source: str = "explicit"
    socket: str | None = None  # a Unix socket path when the server listens on one

    @property
    def api_url(self) -> str:
        """Base of every route: `{url}api/deepresearch/`."""
        return self.url + "api/deepresearch/"

    @property
    def headers(self) -> dict[str, str]:
        """The `Authorization` header Jupyter expects, or nothing for a server without a token."""
        return {"Authorization": f"token {self.token}"} if self.token else {}


def _with_slash(url: str) -> str:
    url = _dialable(url)
    return url if url.endswith("/") else url + "/"


def _join(host: str, prefix: str) -> str:
    prefix = prefix.strip("/")
    return _with_slash(host.rstrip("/") + "/" + (prefix + "/" if prefix else ""))


def _dialable(url: str) -> str:
    # A bind address ("http://:8888/", "http://0.0.0.0:8888/") is reached through loopback.
    parts = urlsplit(url)
    if parts.hostname in (None, "", "0.0.0.0", "::"):
        port = f":{parts.port}" if parts.port else ""
        return parts._replace(netloc=f"127.0.0.1{port}").geturl()
    return url


def _from_runtime_file(path: Path) -> ServerInfo | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    token = str(data.get("token") or "")
    sock = data.get("sock") or None
    url = data.get("url")
    if sock:
        # The URL of a socket server is not dialable over TCP; any host works over the socket.
        return ServerInfo(
            _join("http://localhost", str(data.get("base_url") or "/")),
            token,
            f"runtime file {path}",
            str(sock),
        )
    if not url:
        return None
    return ServerInfo(_with_slash(str(url)), token, f"runtime file {path}")


def running_servers(runtime_dir: str | os.PathLike[str] | None = None) -> list[ServerInfo]:
    """Servers whose runtime file (`jpserver-{pid}.json`) names a live process.

    For a command run outside any server (a terminal, a cron job), where no `JPY_PARENT_PID`
    says which server is ours; `jupyter server list` reads the same files.
    """
    folder = Path(runtime_dir) if runtime_dir is not None else _runtime_dir()
    found = []
    for path in sorted(folder.glob("jpserver-*.json")):
        info = _from_runtime_file(path)
        pid = path.stem.removeprefix("jpserver-")
        if info is not None and pid.isdigit() and _alive(int(pid)):
            found.append(info)
    return found


def _alive(pid: int) -> bool:
    # A crashed server leaves its runtime file behind; signal 0 asks whether the pid still runs.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _runtime_dir() -> Path:
    # jupyter_core is light and always present beside ipykernel; it knows JUPYTER_RUNTIME_DIR.
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


def discover_server(
    url: str | None = None,
    token: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    runtime_dir: str | os.PathLike[str] | None = None,
) -> ServerInfo:
    """Find the server: explicit args, extension env, runtime file, JupyterHub, else raise.

    Never guesses among unrelated servers: the runtime file consulted is only the one of the
    server that launched this kernel (`JPY_PARENT_PID`).
    """
    env = os.environ if environ is None else environ
    tried: list[str] = []

    if url:
        if token is None:
            # A token may come from the environment when only the URL is given.
            token = env.get(ENV_TOKEN) or env.get("JUPYTERHUB_API_TOKEN") or ""
        return ServerInfo(_with_slash(url), token, "explicit arguments")
    tried.append("explicit url= argument: not given")

    if env.get(ENV_URL):
        return ServerInfo(
            _with_slash(env[ENV_URL]),
            token if token is not None else env.get(ENV_TOKEN, ""),
            f"${ENV_URL}",
        )
    tried.append(f"${ENV_URL}: not set (the extension sets it in the kernels its server starts)")

    parent = env.get("JPY_PARENT_PID", "")
    if parent.isdigit():
        folder = Path(runtime_dir) if runtime_dir is not None else _runtime_dir()
        path = folder / f"jpserver-{parent}.json"
        found = _from_runtime_file(path)
        if found is not None:
            if token is not None:
                found = ServerInfo(found.url, token, found.source, found.socket)
            return found
        tried.append(f"runtime file {path}: missing or unreadable")
    else:
        tried.append("runtime file jpserver-$JPY_PARENT_PID.json: $JPY_PARENT_PID not set")

    hub_url = env.get("JUPYTERHUB_SERVICE_URL", "")
    hub_prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "")
    if hub_url or hub_prefix:
        if hub_url:
            # Hub sets the URL with the prefix; add the prefix only where it is missing.
            has_path = urlsplit(hub_url).path.strip("/")
            base = (
                _with_slash(hub_url) if has_path or not hub_prefix else _join(hub_url, hub_prefix)
            )
        else:
            base = _join(HUB_DEFAULT_HOST, hub_prefix)
        hub_token = token if token is not None else env.get("JUPYTERHUB_API_TOKEN", "")
        return ServerInfo(base, hub_token, "JupyterHub environment")
    tried.append("JupyterHub: $JUPYTERHUB_SERVICE_URL and $JUPYTERHUB_SERVICE_PREFIX not set")

    raise ServerNotFound(
        "No Jupyter server with jupyter-deepresearch found for this kernel. Tried:\n  - "
        + "\n  - ".join(tried)
        + "\n"
        + ENABLE_HINT
    )
