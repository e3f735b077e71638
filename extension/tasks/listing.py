"""`GET tasks`: one page of a user's tasks, newest first, filtered by status and text.

A listing shows summaries (everything of `TaskInfo` but the result) unless results are asked
for. Summaries are kept in memory per task and used again while the store's row for the task
shows the same status and update time, so a listing of 10,000 tasks reads only the tasks that
changed since the last one, and a page of 20 reads at most 20. The text filter needs every
row's query; it is served from the same summaries. A server reads them all once after its
start (`warm`), in the background, so that the first full listing does not pay for it; full
listings share that work rather than repeat it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import DeepResearchError
from ..models import Status
from ..store.base import TaskState, TaskStore, TaskSummary

# What a summary was made from: a row that still shows these made the same summary.
_Version = tuple[Status, datetime]


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
        read: Callable[[str], Awaitable[TaskState | None]],
        visible: Callable[[str | None, str | None], bool],
    ) -> None:
        self._store = store
        self._read = read  # the freshest state (a live run's, else a cheap read of the store)
        self._visible = visible
        self._summaries: dict[str, _Summary] = {}
        self._every_row = asyncio.Lock()  # listings that read every row's summary, one at a time

    async def warm(self, user: str | None, log: logging.Logger) -> None:
        """Read the summaries of every task `user` sees (None: every task), once."""
        try:
            await self.page(ListQuery(user=user))
        except DeepResearchError as error:  # a cache: the first listing reads them instead
            log.info("deepresearch: task summaries not read ahead: %s", error)

    async def page(self, query: ListQuery) -> Page:
        if query.limit is None or query.text:
            async with self._every_row:
                return await self._page(query)
        return await self._page(query)

    async def _page(self, query: ListQuery) -> Page:
        rows = await self._store.listing()
        known = {row.task_id for row in rows}
        for task_id in self._summaries.keys() - known:
            del self._summaries[task_id]  # deleted or expired
        rows = [
            row
            for row in rows
            if (query.status is None or row.status is query.status)
            and self._visible(row.owner, query.user)
        ]
        rows.sort(key=lambda row: row.created_at, reverse=True)
        if query.text:
            needle = query.text.casefold()
            matching = []
            for row in rows:
                summary = await self._summary(row)
                if summary is not None and needle in summary.query:
                    matching.append(row)
            rows = matching
        end = None if query.limit is None else query.offset + query.limit
        tasks = []
        for row in rows[query.offset : end]:
            info = await self._info(row, query.with_results)
            # The row may lag the task (it moved on since): a filter holds on what is shown.
            if info is not None and (query.status is None or info["status"] == query.status.value):
                tasks.append(info)
        return Page(tasks, len(rows))

    async def _info(self, row: TaskSummary, with_result: bool) -> dict[str, Any] | None:
        if with_result:
            state = await self._read(row.task_id)
            return None if state is None else state.info().model_dump(mode="json")
        summary = await self._summary(row)
        return None if summary is None else summary.info

    async def _summary(self, row: TaskSummary) -> _Summary | None:
        cached = self._summaries.get(row.task_id)
        if cached is not None and cached.version == (row.status, row.updated_at):
            return cached
        state = await self._read(row.task_id)
        if state is None:
            self._summaries.pop(row.task_id, None)
            return None
        info = state.info().model_dump(mode="json", exclude={"result"})
        query = str(state.request.get("query", "")).casefold()
        summary = _Summary((state.status, state.updated_at), info, query)
        self._summaries[row.task_id] = summary
        return summary
