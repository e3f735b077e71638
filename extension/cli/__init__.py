"""`jupyter deepresearch`: the task manager from a terminal or a script.

Each subcommand is a traitlets `JupyterApp` listed in `_app.SUBCOMMANDS`; the ones that talk
to a server find it as the kernel side does (`kernel_helpers`), `list` and `show` can also read
a store directly, read-only.
"""

from __future__ import annotations

from ._app import DeepResearchCommand, main

__all__ = ["DeepResearchCommand", "main"]
