"""A DELETE right after a resume stops the resumed run: nothing of the task runs or comes back.

Seen once on a loaded machine from the JupyterLab panel (resume, then delete at once): the
DELETE answered 204, yet the run went on and the task completed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from dr_testing.pipelines import GATES, UNIT_CALLS
from dr_testing.waiting import eventually, wait_status

ROUNDS = 15


def runs_of(task_id: str) -> list[asyncio.Task[Any]]:
    """The runner tasks of `task_id` that have not finished."""
    return [
        t for t in asyncio.all_tasks() if t.get_name() == f"deepresearch-{task_id}" and not t.done()
    ]


async def paused_task(api: Any, query: str) -> str:
    GATES[query] = asyncio.Event()
    GATES[query].set()
    task_id = str(json.loads((await api("POST", "tasks", body={"query": query})).body)["task_id"])
    await wait_status(api, task_id, "running")
    assert (await api("POST", "tasks", task_id, "pause")).code == 200
    return task_id


async def assert_gone(api: Any, dr_app: Any, task_id: str, query: str) -> None:
    calls = sum(v for k, v in UNIT_CALLS.items() if k.startswith(f"{query}|"))
    # Whatever still ran of the task must end by itself (bounded), and leave nothing behind.
    await eventually(lambda: _true(not runs_of(task_id)))
    assert task_id not in dr_app.manager.runner.live
    assert (await api("GET", "tasks", task_id)).code == 404
    assert not list(dr_app.manager.store.directory.glob(f"{task_id}*"))
    assert sum(v for k, v in UNIT_CALLS.items() if k.startswith(f"{query}|")) == calls


async def _true(value: bool) -> bool:
    return value


# Concurrently, a resume that takes the lock after the DELETE claims the deleted task's lease
# before it finds the task gone, and leaves `<id>.lease` behind (extension/tasks/takeover.py
# `resume_claimed`; the lead's to fix there, then drop the mark).
LEAKS_A_LEASE = pytest.mark.xfail(
    reason="resume_claimed claims the lease of a task deleted meanwhile; its .lease file stays",
    strict=False,
)


@pytest.mark.parametrize(
    "together",
    [False, pytest.param(True, marks=LEAKS_A_LEASE)],
    ids=["in-turn", "concurrently"],
)
async def test_delete_right_after_resume_stops_the_resumed_run(
    api: Any, dr_app: Any, together: bool
) -> None:
    for n in range(ROUNDS):
        query = f"delete-after-resume {together} {n} units=40 delay=0.05"
        task_id = await paused_task(api, query)
        if together:
            resumed, deleted = await asyncio.gather(
                api("POST", "tasks", task_id, "resume"), api("DELETE", "tasks", task_id)
            )
            assert resumed.code in (200, 404, 409)
        else:
            assert (await api("POST", "tasks", task_id, "resume")).code == 200
            deleted = await api("DELETE", "tasks", task_id)
        assert deleted.code == 204
        await assert_gone(api, dr_app, task_id, query)
