"""Wake-ups for followers of tasks that another process writes: inotify on the task folder.

inotify reports at once what any process on this machine writes into the folder (other servers,
containers sharing the volume, the worker), so a follower learns of new events without waiting
for its next poll. It cannot see writes that other NFS clients make, and may be missing (not
Linux, watch limit reached): followers therefore still poll, only less often while it works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class FolderWatch:
    """One inotify watch on the folder, shared by every follower of this store."""

    def __init__(self, directory: Path, log: logging.Logger) -> None:
        self.directory = directory
        self.log = log
        self.available: bool | None = None  # None: not tried yet
        self.wakeups = 0  # followers woken by a change (for tests and health)
        self._inotify: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def _start(self) -> bool:
        if self.available is not None:
            return self.available
        try:
            from asyncinotify import Inotify, Mask

            inotify = Inotify()
            try:
                # Appends to a task's index (events committed) and renames onto its snapshot.
                inotify.add_watch(self.directory, Mask.MODIFY | Mask.MOVED_TO | Mask.CLOSE_WRITE)
            except BaseException:
                inotify.close()
                raise
        except Exception as error:  # not Linux, no package, or the watch limit is reached
            self.log.info("Task folder not watched (%s); followers poll instead", error)
            self.available = False
            return False
        self._inotify = inotify
        self._reader = asyncio.create_task(self._read(), name="deepresearch-watch")
        self.available = True
        return True

    async def _read(self) -> None:
        from asyncinotify import Mask

        try:
            async for event in self._inotify:
                if event.mask & Mask.Q_OVERFLOW:
                    self._wake_all()  # events were dropped: anyone may have news
                elif event.name is not None:
                    self._wake(str(event.name).split(".", 1)[0])
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.log.warning("Task folder watch stopped (%s); followers poll instead", error)
            self.available = False
            self._wake_all()

    def _wake(self, task_id: str) -> None:
        for waiter in self._waiters.get(task_id, ()):
            self.wakeups += 1
            waiter.set()

    def _wake_all(self) -> None:
        for task_id in list(self._waiters):
            self._wake(task_id)

    @contextlib.contextmanager
    def watching(self, task_id: str) -> Iterator[asyncio.Event | None]:
        """An event set whenever a file of the task changes; None if the folder is not watched."""
        if not self._start():
            yield None
            return
        waiter = asyncio.Event()
        self._waiters.setdefault(task_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[task_id]

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        self.available = None
