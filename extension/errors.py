"""Domain errors of the extension; `handlers.py` maps them to HTTP responses in one place."""

from __future__ import annotations

from .redact import scrub


class DeepResearchError(Exception):
    """Base of every error this package raises on purpose; carries an HTTP status."""

    status_code = 500

    def __init__(self, message: str) -> None:
        # Scrubbed where it is made: a message goes to clients, the store and logs alike.
        message = scrub(message)
        super().__init__(message)
        self.message = message


class BadRequest(DeepResearchError):
    """The client sent something invalid; the message names the field and why."""

    status_code = 400


class Forbidden(DeepResearchError):
    """The caller may not do this: another user's task, a provider URL the server does not allow."""

    status_code = 403


class TaskNotFound(DeepResearchError):
    """No task with this id exists (or it is not visible to the caller)."""

    status_code = 404

    def __init__(self, task_id: str) -> None:
        super().__init__(f"No task with id {task_id!r}.")
        self.task_id = task_id


class Conflict(DeepResearchError):
    """The requested state change is impossible from the task's current status."""

    status_code = 409


class PayloadTooLarge(DeepResearchError):
    """The request body exceeds `max_body_bytes`."""

    status_code = 413


class StoreUnavailable(DeepResearchError):
    """The task store cannot be read or written right now (disk full, read-only, Redis down)."""

    status_code = 503


class LeaseLost(DeepResearchError):
    """This server may no longer write the task: another server took its lease over."""

    status_code = 409

    def __init__(self, task_id: str) -> None:
        super().__init__(f"Task {task_id!r} is now run by another server.")
        self.task_id = task_id


class ResearchError(DeepResearchError):
    """A research run failed for a reason the user should read (provider error, bad source)."""

    status_code = 500


class MissingCredentials(ResearchError):
    """A provider needs a secret that neither the request nor the server configuration holds.

    The manager leaves the task `paused` with this message instead of failing it.
    """


class TooManyRequests(DeepResearchError):
    """A per-user or per-server limit is reached; the message names it and its setting."""

    status_code = 429
