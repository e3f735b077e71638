"""The task manager and its parts: runs, takeover between servers, upkeep loops, event fan-out."""

from __future__ import annotations

from .manager import TaskManager
from .requests import RequestPolicy
from .takeover import TakeoverPolicy

__all__ = ["RequestPolicy", "TakeoverPolicy", "TaskManager"]
