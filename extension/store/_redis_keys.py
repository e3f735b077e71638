"""Settings and key names of the `redis` backend, in one place (its Lua is `_redis_scripts`)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..ids import checked_task_id


@dataclass(frozen=True)
class RedisSettings:
    """Connection settings from one URL: `redis://[:password@]host:port/db?prefix=dr:`."""

    url: str
    prefix: str = "deepresearch:"

    @classmethod
    def from_url(cls, url: str) -> RedisSettings:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", "deepresearch:")
        clean = urlunsplit(parts._replace(query=urlencode(query)))
        return cls(url=clean, prefix=prefix)

    def display(self) -> str:
        """The URL without a password, for messages and `GET health`."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc, query=""))


class Keys:
    """Every key name the backend uses, in one place.

    A task's keys end in its id, checked against the id rule (`ids.py`: no colon, no glob
    character): no id can make the key of another task, of another kind, or a pattern.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.tasks = f"{prefix}tasks"
        self.active = f"{prefix}active"
        self.active_built = f"{prefix}active:built"  # set once `active` covers older tasks

    def hint(self, name: str) -> str:
        """A `write_hint` blob (its name checked by the caller)."""
        return f"{self.prefix}hint:{name}"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}task:{checked_task_id(task_id)}"

    def events(self, task_id: str) -> str:
        return f"{self.prefix}events:{checked_task_id(task_id)}"

    def checkpoints(self, task_id: str) -> str:
        return f"{self.prefix}ckpt:{checked_task_id(task_id)}"

    def lease(self, task_id: str) -> str:
        return f"{self.prefix}lease:{checked_task_id(task_id)}"

    def control(self, task_id: str) -> str:
        return f"{self.prefix}control:{checked_task_id(task_id)}"

    def head(self, task_id: str) -> list[str]:
        """The keys a head-writing script takes, in its order: task, events, ckpt, lease, active."""
        return [
            self.task(task_id),
            self.events(task_id),
            self.checkpoints(task_id),
            self.lease(task_id),
            self.active,
        ]

    def of(self, task_id: str) -> list[str]:
        """Every key of one task."""
        return [
            self.task(task_id),
            self.events(task_id),
            self.checkpoints(task_id),
            self.lease(task_id),
            self.control(task_id),
        ]
