"""What every subcommand shares: exit codes, one-line errors, finding the server."""

from __future__ import annotations

import sys
from typing import Any

from jupyter_core.application import JupyterApp
from traitlets import Bool, Float, Unicode

from jupyter_deepresearch.extension.errors import DeepResearchError
from jupyter_deepresearch.kernel_helpers._client import ResearchClient
from jupyter_deepresearch.kernel_helpers._discovery import (
    ENV_TOKEN,
    ENV_URL,
    ServerInfo,
    discover_server,
    running_servers,
)
from jupyter_deepresearch.kernel_helpers._errors import ServerNotFound

from ._exit import ExitCode, usage_status


class CommandError(Exception):
    """A problem the user can fix; printed as one line, exit status `ExitCode.error`."""


class Command(JupyterApp):
    """A subcommand: `run()` returns the exit status; known errors become one line on stderr."""

    # One file (e.g. `ClientCommand.url`) for every subcommand.
    config_file_name = Unicode("jupyter_deepresearch_config", config=True)

    def run(self) -> int:
        """Do the subcommand's work; the exit status."""
        raise NotImplementedError

    def initialize(self, argv: Any = None) -> None:
        try:
            super().initialize(argv)
        except SystemExit as stop:
            raise SystemExit(usage_status(stop.code)) from None

    def start(self) -> None:
        try:
            code = self.run()
        except KeyboardInterrupt:
            code = 130  # as a shell reports SIGINT
        except (CommandError, DeepResearchError, ValueError) as exc:
            # Server messages may span lines; a script's log wants one.
            print(f"Error: {' '.join(str(exc).split())}", file=sys.stderr)
            code = ExitCode.error
        self.exit(int(code))

    def task_id_arg(self) -> str:
        """The one positional argument: a task id."""
        if len(self.extra_args) != 1:
            raise CommandError(f"expected one task id, got {len(self.extra_args)} arguments")
        return str(self.extra_args[0]).strip()


SERVER_HINT = (
    "start one with `jupyter lab` (or `jupyter server`) with the extension enabled, or point to "
    f"one with --url URL --token TOKEN (or ${ENV_URL} and ${ENV_TOKEN})"
)


class ClientCommand(Command):
    """A subcommand that talks to a running Jupyter server."""

    url = Unicode(
        "",
        config=True,
        help=f"Base URL of the Jupyter server, e.g. http://127.0.0.1:8888/ (default: ${ENV_URL}, "
        "then the server that launched this process, then the only running server).",
    )
    token = Unicode(
        None,
        allow_none=True,
        config=True,
        help=f"The server's token (default: ${ENV_TOKEN}, or the runtime file of --url's server).",
    )
    timeout = Float(30.0, config=True, help="Seconds to wait for each answer of the server.")

    aliases: dict[str, Any] = {  # noqa: RUF012 (read by traitlets)
        **JupyterApp.aliases,
        "url": "ClientCommand.url",
        "token": "ClientCommand.token",
    }

    def client(self) -> ResearchClient:
        """A client of the server found like the kernel side finds it, else the running one."""
        return ResearchClient(server=self.find_server(), timeout=self.timeout)

    def find_server(self) -> ServerInfo:
        running: list[ServerInfo] | None = None
        token = self.token
        if self.url and token is None:
            # The token of a local server is in its runtime file, beside its URL.
            running = running_servers(self.runtime_dir)
            wanted = ServerInfo(self.url).url.rstrip("/")
            token = next((s.token for s in running if s.url.rstrip("/") == wanted), None)
        try:
            return discover_server(self.url or None, token)
        except ServerNotFound:
            pass
        running = running_servers(self.runtime_dir) if running is None else running
        if len(running) == 1:
            return running[0]
        if running:
            urls = ", ".join(s.url for s in running)
            raise CommandError(f"several Jupyter servers are running ({urls}); pick one with --url")
        raise CommandError(f"no running Jupyter server found; {SERVER_HINT}")


class StoreCommand(ClientCommand):
    """A subcommand that can also read a store directly (read-only) instead of a server."""

    storage_dir = Unicode(
        "",
        config=True,
        help="Read the `files` store in this folder directly, read-only (no server needed).",
    )
    redis_url = Unicode(
        "",
        config=True,
        help="Read the `redis` store at this URL directly, read-only (no server needed).",
    )
    as_json = Bool(False, config=True, help="Print JSON instead of text.")

    aliases: dict[str, Any] = {  # noqa: RUF012
        **ClientCommand.aliases,
        "storage-dir": "StoreCommand.storage_dir",
        "redis-url": "StoreCommand.redis_url",
    }
    flags: dict[str, Any] = {  # noqa: RUF012
        **JupyterApp.flags,
        "json": ({"StoreCommand": {"as_json": True}}, "Print JSON instead of text."),
    }

    @property
    def reads_store(self) -> bool:
        return bool(self.storage_dir or self.redis_url)
