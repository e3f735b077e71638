"""Per-user limits on a shared server: how many tasks one user may have unfinished or stored,
and how long this server's queue may grow. Pure policy; the manager supplies the counts.

Every refusal names the limit and the `DeepResearchApp` setting that raises it (0 = no limit).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import TooManyRequests
from .research.text import counted
from .store.base import TaskSummary


@dataclass(frozen=True)
class Limits:
    """The configured limits; 0 means none."""

    unfinished_per_user: int = 0
    queued: int = 0
    stored_per_user: int = 0

    @property
    def counts_stored(self) -> bool:
        """Whether a check needs every stored task (a full listing), not only unfinished ones."""
        return self.stored_per_user > 0

    def check_new_run(
        self,
        user: str | None,
        unfinished: Iterable[TaskSummary],
        queued_here: int,
        *,
        new_task: bool,
        stored: Iterable[TaskSummary] = (),
    ) -> None:
        """Raise `TooManyRequests` if one more unfinished task of `user` exceeds a limit."""
        if self.queued and queued_here >= self.queued:
            raise TooManyRequests(
                f"This server already has {counted(queued_here, 'task')} waiting to run (the "
                f"limit is {self.queued}); try again when some have finished, or raise "
                "DeepResearchApp.max_queued_tasks."
            )
        who = f"User {user!r} already has" if user else "You already have"
        if self.unfinished_per_user:
            mine = sum(1 for row in unfinished if row.owner == user)
            if mine >= self.unfinished_per_user:
                raise TooManyRequests(
                    f"{who} {counted(mine, 'unfinished task')} (the limit is "
                    f"{self.unfinished_per_user}); pause, cancel or wait for some, or raise "
                    "DeepResearchApp.max_unfinished_tasks_per_user."
                )
        if new_task and self.stored_per_user:
            kept = sum(1 for row in stored if row.owner == user)
            if kept >= self.stored_per_user:
                raise TooManyRequests(
                    f"{who} {counted(kept, 'stored task')} (the limit is "
                    f"{self.stored_per_user}); delete some, or raise "
                    "DeepResearchApp.max_stored_tasks_per_user."
                )
