"""`GET tasks`: one page of a user's tasks, newest first, filtered by status and text.

A listing shows summaries (everything of `TaskInfo` but the result) unless results are asked
for. Summaries are kept in memory per task and used again while the store's row for the task
shows the same status and update time, so a listing of 10,000 tasks reads only the tasks that
changed since the last one, and a page of 20 reads at most 20. The text filter needs every
row's query; it is served from the same summaries. A server reads them all once after its
start (`warm`), in the background, so that the first full listing does not pay for it; full
listings share that work rather than repeat it.

The summaries are also kept in the store for the next server (`write_hint`, one per user seen:
about 0.5 KB a task), after the read-ahead, at most every `SAVE_INTERVAL` after, and at stop: a
server then starts with them and reads only the tasks that changed meanwhile (each kept summary
is used only while its task's row shows the same status and update time, as in memory).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import DeepResearchError
from ..models import Status, TaskInfo
from ..store.base import TaskState, TaskStore, TaskSummary

# What a summary was made from: a row that still shows these made the same summary.
_Version = tuple[Status, datetime]
SAVE_INTERVAL = 60.0  # seconds between two saves of changed summaries
# The read-ahead waits out a server's start (its first takeover pass and health probes) rather
# than compete with it; a full listing asked meanwhile does the same work itself.
WARM_DELAY = 1.0
# Summaries kept in memory are served without a pause: a listing of 10,000 lets other requests
# (a health probe) in between every so many rows rather than hold the loop for all of them.
_ROWS_PER_TURN = 500
_READ_BATCH = 200  # tasks read for their summaries in one store call (one thread hop on files)
_SAVED_VERSION = 1
# Kept summaries are `TaskInfo` without its result: a server whose `TaskInfo` has other fields
# (another version) does not use them.
_INFO_FIELDS = sorted(set(TaskInfo.model_fields) - {"result"})


@dataclass(frozen=True)
class ListQuery:
    """What a listing asks for (the query string of `GET tasks`)."""

    user: str | None = None
    status: Status | None = None
    limit: int | None = None
    offset: int = 0
    text: str | None = None  # case-insensitive, anywhere in the task's query
    with_results: bool = False


@dataclass(frozen=True)
class Page:
    """One page of a listing, and how many tasks match it in all."""

    tasks: list[dict[str, Any]]
    total: int


@dataclass(frozen=True)
class _Summary:
    version: _Version
    info: dict[str, Any]  # `TaskInfo` as JSON, without `result`
    query: str  # casefolded, for the text filter


class TaskListing:
    """Pages of tasks from the store's rows and a cache of per-task summaries."""

    def __init__(
        self,
        store: TaskStore,
        read: Callable[[list[str]], Awaitable[dict[str, TaskState | None]]],
        visible: Callable[[str | None, str | None], bool],
        log: logging.Logger | None = None,
    ) -> None:
        self._store = store
        self._log = log or logging.getLogger(__name__)
        # The freshest states of tasks, by id (a live run's, else a cheap read of the store).
        self._read = read
        self._visible = visible
        self._summaries: dict[str, _Summary] = {}
        self._every_row = asyncio.Lock()  # listings that read every row's summary, one at a time
        self._hint: str | None = None  # where this server keeps its summaries, once restored
        self._changed = False  # summaries made or dropped since the last save
        self._saved_at = 0.0  # time.monotonic() of the last save

    async def warm(self, user: str | None, *, delay: float = WARM_DELAY) -> None:
        """Read the summaries of every task `user` sees (None: every task), once, `delay`
        seconds from now."""
        await asyncio.sleep(delay)
        try:
            await self.page(ListQuery(user=user))
        except DeepResearchError as error:  # a cache: the first listing reads them instead
            self._log.info("deepresearch: task summaries not read ahead: %s", error)
        await self.save()

    async def page(self, query: ListQuery) -> Page:
        if query.limit is None or query.text:
            async with self._every_row:
                await self._restore(query.user)
                page = await self._page(query)
            await self.save(due_only=True)
            return page
        return await self._page(query)

    async def save(self, *, due_only: bool = False) -> None:
        """Keep the summaries in the store for the next server, if they changed (never raises).

        `due_only`: not within `SAVE_INTERVAL` of the last save.
        """
        if self._hint is None or not self._changed:
            return
        if due_only and time.monotonic() - self._saved_at < SAVE_INTERVAL:
            return
        self._changed, self._saved_at = False, time.monotonic()
        rows = [
            [task_id, s.version[0].value, s.version[1].isoformat(), s.info]
            for task_id, s in self._summaries.items()
        ]
        try:
            data = await asyncio.to_thread(_encode, rows)
            await self._store.write_hint(self._hint, data)
        except (DeepResearchError, OSError) as error:  # a cache: the next start reads them
            self._changed = True
            self._log.debug("deepresearch: task summaries not kept for the next start: %s", error)

    async def _restore(self, user: str | None) -> None:
        """Take the summaries an earlier server kept, once (per listing object)."""
        if self._hint is not None:
            return
        self._hint = _hint_name(user)
        try:
            data = await self._store.read_hint(self._hint)
        except DeepResearchError:
            return
        if data:
            for task_id, summary in (await asyncio.to_thread(_decode, data)).items():
                self._summaries.setdefault(task_id, summary)

    async def _page(self, query: ListQuery) -> Page:
        rows = await self._store.listing()
        known = {row.task_id for row in rows}
        for task_id in self._summaries.keys() - known:
            del self._summaries[task_id]  # deleted or expired
            self._changed = True
        rows = [
            row
            for row in rows
            if (query.status is None or row.status is query.status)
            and self._visible(row.owner, query.user)
        ]
        rows.sort(key=lambda row: row.created_at, reverse=True)
        end = None if query.limit is None else query.offset + query.limit
        summaries: dict[str, _Summary | None] = {}
        if query.text or not query.with_results:
            summaries = await self._summaries_of(rows if query.text else rows[query.offset : end])
        if query.text:
            needle = query.text.casefold()
            rows = [
                row
                for row in rows
                if (summary := summaries[row.task_id]) is not None and needle in summary.query
            ]
        shown = rows[query.offset : end]
        if query.with_results:
            infos = await self._full_infos(shown)
        else:
            infos = [_info_of(summaries[row.task_id]) for row in shown]
        # The row may lag the task (it moved on since): a filter holds on what is shown.
        tasks = [
            info
            for info in infos
            if info is not None and (query.status is None or info["status"] == query.status.value)
        ]
        return Page(tasks, len(rows))

    async def _full_infos(self, rows: list[TaskSummary]) -> list[dict[str, Any] | None]:
        """`TaskInfo` with its result of each row's task (None: gone meanwhile)."""
        infos: list[dict[str, Any] | None] = []
        for start in range(0, len(rows), _READ_BATCH):
            batch = [row.task_id for row in rows[start : start + _READ_BATCH]]
            states = await self._read(batch)
            for task_id in batch:
                state = states.get(task_id)
                infos.append(None if state is None else state.info().model_dump(mode="json"))
        return infos

    async def _summaries_of(self, rows: list[TaskSummary]) -> dict[str, _Summary | None]:
        """The summary of each row's task (None: gone meanwhile): kept ones while the row shows
        what they were made from, else made from the tasks, read in batches of `_READ_BATCH`."""
        found: dict[str, _Summary | None] = {}
        stale = []
        for n, row in enumerate(rows, 1):
            if n % _ROWS_PER_TURN == 0:
                await asyncio.sleep(0)
            kept = self._summaries.get(row.task_id)
            if kept is not None and kept.version == (row.status, row.updated_at):
                found[row.task_id] = kept
            else:
                stale.append(row.task_id)
        for start in range(0, len(stale), _READ_BATCH):
            batch = stale[start : start + _READ_BATCH]
            states = await self._read(batch)
            for task_id in batch:
                found[task_id] = self._keep(task_id, states.get(task_id))
        return found

    def _keep(self, task_id: str, state: TaskState | None) -> _Summary | None:
        self._changed = True
        if state is None:
            self._summaries.pop(task_id, None)
            return None
        info = state.info().model_dump(mode="json", exclude={"result"})
        summary = _Summary((state.status, state.updated_at), info, _query_of(info))
        self._summaries[task_id] = summary
        return summary


def _info_of(summary: _Summary | None) -> dict[str, Any] | None:
    return None if summary is None else summary.info


def _query_of(info: dict[str, Any]) -> str:
    return str(info["request"].get("query", "")).casefold()


def _hint_name(user: str | None) -> str:
    """The store hint holding the summaries of `user`'s server (None: a server of all tasks)."""
    key = "\0" if user is None else user  # no user name is a NUL
    return "task-summaries-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _encode(rows: list[list[Any]]) -> bytes:
    doc = {"version": _SAVED_VERSION, "fields": _INFO_FIELDS, "summaries": rows}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _decode(data: bytes) -> dict[str, _Summary]:
    """Kept summaries, by task id; none if the hint is damaged or of another version."""
    try:
        doc = json.loads(data)
        if doc["version"] != _SAVED_VERSION or doc["fields"] != _INFO_FIELDS:
            return {}
        found = {}
        for task_id, status, updated, info in doc["summaries"]:
            # Used only while the task's row shows this version, then served as it is: enough
            # of a check that it is a summary of this task (a damaged entry voids the hint).
            if not (
                isinstance(task_id, str)
                and isinstance(info, dict)
                and info.keys() == set(_INFO_FIELDS)
                and info["task_id"] == task_id
                and info["status"] == status
                and isinstance(info["request"], dict)
            ):
                return {}
            version = (Status(status), datetime.fromisoformat(updated))
            found[task_id] = _Summary(version, info, _query_of(info))
        return found
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}
