"""Exceptions the kernel side raises: server errors carry the server's own message."""

from __future__ import annotations

from jupyter_deepresearch.extension.errors import DeepResearchError


class ServerNotFound(DeepResearchError, LookupError):
    """No Jupyter server with the deep-research extension could be found or reached."""

    status_code = 0


class ResearchAPIError(DeepResearchError):
    """The server answered with an error; `message` is its `{"message"}` text."""

    def __init__(self, message: str, status_code: int = 500) -> None:
        super().__init__(message)
        self.status_code = status_code

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status_code})"


class BadRequestError(ResearchAPIError, ValueError):
    """400: the request was invalid; the message names the field and why."""


class ForbiddenError(ResearchAPIError, PermissionError):
    """401 or 403: the token is missing, wrong, or may not touch this task."""


class TaskNotFoundError(ResearchAPIError, LookupError):
    """404: no task with this id (deleted, expired, or never created)."""


class ConflictError(ResearchAPIError):
    """409: the move (pause, resume, cancel) is not possible from the task's status."""


class PayloadTooLargeError(ResearchAPIError, ValueError):
    """413: the request body is over the server's `max_body_bytes`."""


class ServiceUnavailableError(ResearchAPIError):
    """503 (or another 5xx): the task store or the server is unavailable right now."""


class ServerUnreachable(ResearchAPIError, ConnectionError):
    """The HTTP connection to the server failed (server stopped, restarting, wrong address)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=0)

    def __str__(self) -> str:
        return self.message


class ResearchFailed(DeepResearchError):
    """The task ended `failed`; the message is the task's error."""

    def __init__(self, task_id: str, error: str) -> None:
        super().__init__(f"Research task {task_id} failed: {error}")
        self.task_id = task_id
        self.error = error


class ResearchCancelled(DeepResearchError):
    """The task ended `cancelled` while someone waited for its report."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"Research task {task_id} was cancelled; task.resume() continues it.")
        self.task_id = task_id


class ResearchPaused(DeepResearchError):
    """The task is paused (by a user, or for missing credentials) and will not finish by itself."""

    def __init__(self, task_id: str, reason: str) -> None:
        super().__init__(
            f"Research task {task_id} is paused: {reason}. task.resume() continues it."
        )
        self.task_id = task_id
        self.reason = reason


_BY_STATUS: dict[int, type[ResearchAPIError]] = {
    400: BadRequestError,
    401: ForbiddenError,
    403: ForbiddenError,
    404: TaskNotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
}


def error_for_status(status_code: int, message: str) -> ResearchAPIError:
    """The exception class that matches an HTTP error status."""
    if status_code in _BY_STATUS:
        return _BY_STATUS[status_code](message, status_code)
    if status_code >= 500:
        return ServiceUnavailableError(message, status_code)
    return ResearchAPIError(message, status_code)
