"""`jupyter deepresearch worker`: run queued tasks from the store without a notebook server.

On a JupyterHub whose idle culler stops user servers, a worker (a Hub service, a sidecar, a
cron'd container) keeps research going: it takes every task whose lease lapsed (queued, running
on a server that died, paused by a server's shutdown), runs up to `max_concurrent_tasks` at
once, and on SIGTERM pauses its runs as a server does, leaving them for whoever starts next.
It reads the server's own configuration (`jupyter_server_config.*`, section `DeepResearchApp`).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from jupyter_core.application import JupyterApp
from traitlets import Unicode

from .app import DeepResearchApp


class WorkerApp(JupyterApp):
    """Runs deep-research tasks from the store until SIGTERM."""

    name = "jupyter-deepresearch-worker"
    description = __doc__
    # The server's configuration file, so one `DeepResearchApp` section configures both.
    config_file_name = Unicode("jupyter_server_config", config=True)
    root_dir = Unicode(
        "", config=True, help="Folder that `search.sources` resolve against (default: cwd)."
    )
    classes = [DeepResearchApp]  # noqa: RUF012 (traitlets reads these class attributes)
    aliases = {  # noqa: RUF012
        "storage-dir": "DeepResearchApp.storage_dir",
        "store": "DeepResearchApp.store",
        "redis-url": "DeepResearchApp.redis_url",
        "max-concurrent": "DeepResearchApp.max_concurrent_tasks",
        "lease-seconds": "DeepResearchApp.lease_seconds",
        "flush-interval": "DeepResearchApp.flush_interval",
        "pipeline": "DeepResearchApp.pipeline",
        "root-dir": "WorkerApp.root_dir",
    }
    flags: dict[str, Any] = {}  # noqa: RUF012

    def start(self) -> None:
        settings = DeepResearchApp(config=self.config, log=self.log)
        root = Path(self.root_dir or ".").expanduser().resolve()
        asyncio.run(self._serve(settings, root))

    async def _serve(self, settings: DeepResearchApp, root: Path) -> None:
        manager = settings.build_manager(root, worker=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await manager.ensure_started()
        self.log.info(
            "deepresearch worker: %s store at %s, up to %d concurrent tasks, lease %.0fs",
            settings.store,
            manager.store.location,
            settings.max_concurrent_tasks,
            manager.leases.seconds,
        )
        await stop.wait()
        self.log.info("deepresearch worker: stopping, pausing running tasks")
        await manager.stop()


def main(argv: list[str] | None = None) -> None:
    """`jupyter deepresearch <subcommand>`: kept here for `python -m ...extension.worker worker`."""
    from .cli import main as cli_main

    cli_main(argv)


if __name__ == "__main__":
    main()
