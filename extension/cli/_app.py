"""The `jupyter deepresearch` command and its subcommand table."""

from __future__ import annotations

import sys
from typing import Any

from jupyter_core.application import JupyterApp

from ._exit import ExitCode, usage_status

TASKS = "jupyter_deepresearch.extension.cli._tasks."
# name -> (app class as an import path, so a subcommand's imports load only when it runs; help).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "list": (TASKS + "ListCommand", "List tasks, newest first."),
    "show": (TASKS + "ShowCommand", "Show a task and its report."),
    "tail": (TASKS + "TailCommand", "Follow a task to its end."),
    "submit": (TASKS + "SubmitCommand", "Start a research task."),
    "pause": (TASKS + "PauseCommand", "Pause a task."),
    "resume": (TASKS + "ResumeCommand", "Resume a task."),
    "cancel": (TASKS + "CancelCommand", "Cancel a task."),
    "restart": (TASKS + "RestartCommand", "Run a task anew."),
    "delete": (TASKS + "DeleteCommand", "Delete a task."),
    "export": (
        "jupyter_deepresearch.extension.cli_recordings.ExportApp",
        "Write completed tasks as recordings: export --to DIR [ID ...].",
    ),
    "import": (
        "jupyter_deepresearch.extension.cli_recordings.ImportApp",
        "Load recordings into the store: import DIR.",
    ),
    "worker": (
        "jupyter_deepresearch.extension.worker.WorkerApp",
        "Run queued tasks from the store without a notebook server, until SIGTERM.",
    ),
}


class DeepResearchCommand(JupyterApp):
    """Research tasks of jupyter-deepresearch from the command line."""

    name = "jupyter-deepresearch"
    description = (
        "Research tasks of jupyter-deepresearch from the command line: "
        "`jupyter deepresearch <subcommand> --help` for each."
    )
    subcommands: dict[str, Any] = dict(SUBCOMMANDS)  # noqa: RUF012 (read by traitlets)

    def start(self) -> None:
        if self.subapp is None:
            names = ", ".join(self.subcommands)
            if self.extra_args:
                unknown = self.extra_args[0]
                print(f"Unknown subcommand {unknown!r}; one of: {names}", file=sys.stderr)
            else:
                self.print_help()
                print(f"A subcommand is required: one of {names}", file=sys.stderr)
            self.exit(ExitCode.error)
        super().start()

    def initialize(self, argv: Any = None) -> None:
        try:
            super().initialize(argv)
        except SystemExit as stop:
            raise SystemExit(usage_status(stop.code)) from None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `jupyter-deepresearch` command (`jupyter deepresearch <sub>`)."""
    DeepResearchCommand.launch_instance(sys.argv[1:] if argv is None else argv)
