"""How requests become tasks: server defaults and key routing, checks, task ids, limits.

Pure decisions on a request and the store's listings; the manager calls them before it creates,
resumes or restarts anything, so a request that fails any of them changes nothing stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import BadRequest, Forbidden
from ..fingerprint import task_id_for
from ..limits import Limits
from ..models import ResearchRequest, validation_message
from ..resolve import RequestResolver
from ..store.base import TaskState, TaskStore

RequestValidator = Callable[[ResearchRequest, Path], None]
# Raises when the request may not start research here (`replay.Replay.check_may_run`).
RunCheck = Callable[[ResearchRequest], None]


@dataclass(frozen=True)
class RequestPolicy:
    """How requests become tasks: defaults, key routing, id scope, checks and limits."""

    default_ai: dict[str, Any] = field(default_factory=dict)
    default_search: dict[str, Any] = field(default_factory=dict)
    allowed_base_urls: tuple[str, ...] = ()
    fingerprint_scope: str = "user"
    validate: RequestValidator | None = None
    limits: Limits = field(default_factory=Limits)
    may_run: RunCheck | None = None


class Requests:
    """Applies a `RequestPolicy` for one manager."""

    def __init__(self, policy: RequestPolicy, root_dir: Path) -> None:
        self.policy = policy
        self.root_dir = root_dir
        self.resolver = RequestResolver(
            policy.default_ai, policy.default_search, policy.allowed_base_urls
        )

    def resolve(self, request: ResearchRequest) -> ResearchRequest:
        """Apply the server's defaults, key routing and URL allow-list (see `resolve.py`)."""
        return self.resolver.resolve(request)

    def accept(self, request: ResearchRequest) -> ResearchRequest:
        """The resolved request, once every check a new request must pass has passed."""
        request = self.resolve(request)
        if self.policy.validate is not None:
            self.policy.validate(request, self.root_dir)
        return request

    def check_may_run(self, request: ResearchRequest) -> None:
        """Refuse a request that would start research (create, resume, restart) where research
        may not run for it (replay_only without a recording); nothing is changed before."""
        if self.policy.may_run is not None:
            self.policy.may_run(request)

    def task_id_of(self, request: ResearchRequest, user: str | None) -> str:
        owner = user if self.policy.fingerprint_scope == "user" else None
        return task_id_for(request, owner)

    def stored_request(self, state: TaskState) -> ResearchRequest:
        """Rebuild the resolved request of a stored task; secrets come from configuration."""
        try:
            request = ResearchRequest.model_validate(state.request, strict=False)
        except ValidationError as error:
            raise BadRequest(validation_message(error)) from None
        try:
            return self.resolve(request)
        except Forbidden as error:
            # Allowed when submitted, not any more: as unrunnable as any other stored mistake.
            raise BadRequest(error.message) from None

    def visible(self, owner: str | None, user: str | None) -> bool:
        """Whether `user` sees a task of `owner`."""
        # Tasks without an owner (written by the seed app, or created with `shared` scope)
        # belong to everyone who can reach the server.
        return self.policy.fingerprint_scope != "user" or user is None or owner in (None, user)

    async def check_limits(
        self, store: TaskStore, user: str | None, queued_here: int, *, new_task: bool
    ) -> None:
        """Refuse (429) one more unfinished task of `user` beyond the configured limits."""
        limits = self.policy.limits
        if not (limits.queued or limits.unfinished_per_user or (new_task and limits.counts_stored)):
            return
        unfinished = await store.unfinished() if limits.unfinished_per_user else []
        stored = await store.summaries() if new_task and limits.counts_stored else []
        limits.check_new_run(user, unfinished, queued_here, new_task=new_task, stored=stored)
