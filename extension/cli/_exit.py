"""Exit statuses of `jupyter deepresearch` (no heavy imports: the command table uses them)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a subcommand's exit status tells a script."""

    ok = 0  # done; for `tail`/`--wait`: the task completed
    failed = 1  # the task failed
    cancelled = 2  # the task was cancelled
    # Nothing done: a bad command line, server not found or unreachable, task not found, a
    # request the server refused.
    error = 3
    paused = 4  # `tail`/`--wait`: the task is paused and waits for a user (resume, or a key)


def usage_status(code: object) -> object:
    """The exit status for a bad command line: argparse and traitlets exit with 2 or 1, which
    here mean "cancelled" and "failed"; a script must not take a typo for either."""
    return code if code in (0, None) else int(ExitCode.error)
