"""Pause, resume, cancel, delete; impossible moves are 409; the queue honours its limit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from dr_testing.pipelines import GATES, UNIT_CALLS
from dr_testing.waiting import eventually, wait_status


def body(response: Any) -> Any:
    return json.loads(response.body)


async def start_gated(api: Any, query: str) -> str:
    GATES[query] = asyncio.Event()
    task_id = str(body(await api("POST", "tasks", body={"query": query}))["task_id"])
    await wait_status(api, task_id, "running")
    return task_id


async def test_pause_then_resume_keeps_finished_units(api: Any) -> None:
    query = "pause-resume units=3"
    GATES[query] = asyncio.Event()
    GATES[query].set()
    task_id = body(await api("POST", "tasks", body={"query": query}))["task_id"]

    async def two_units_done() -> bool:
        return UNIT_CALLS[f"{query}|1"] == 1

    await eventually(two_units_done)
    GATES[query].clear()
    paused = await api("POST", "tasks", task_id, "pause")
    assert paused.code == 200 and body(paused)["status"] == "paused"
    assert (await api("POST", "tasks", task_id, "pause")).code == 409
    GATES[query].set()
    resumed = await api("POST", "tasks", task_id, "resume")
    assert resumed.code == 200 and body(resumed)["status"] in ("queued", "running")
    assert (await api("POST", "tasks", task_id, "resume")).code == 409
    done = await wait_status(api, task_id, "completed")
    assert done["attempts"] == 2
    assert [UNIT_CALLS[f"{query}|{n}"] for n in range(3)] == [1, 1, 1]


async def test_pause_takes_effect_within_a_second(api: Any) -> None:
    task_id = await start_gated(api, "pause-fast units=2")
    # The unit in progress waits on a gate that never opens: the pause abandons it.
    response = await api("POST", "tasks", task_id, "pause")
    assert body(response)["status"] == "paused"


async def test_cancel_and_impossible_moves(api: Any) -> None:
    task_id = await start_gated(api, "cancel units=2")
    cancelled = await api("POST", "tasks", task_id, "cancel")
    assert body(cancelled)["status"] == "cancelled"
    assert (await api("POST", "tasks", task_id, "cancel")).code == 409
    assert (await api("POST", "tasks", task_id, "pause")).code == 409
    message = body(await api("POST", "tasks", task_id, "pause"))["message"]
    assert "cancelled" in message


async def test_completed_task_cannot_be_paused_or_cancelled(api: Any) -> None:
    task_id = body(await api("POST", "tasks", body={"query": "finished units=1"}))["task_id"]
    await wait_status(api, task_id, "completed")
    for action in ("pause", "cancel", "resume"):
        assert (await api("POST", "tasks", task_id, action)).code == 409


async def test_delete_stops_and_removes(api: Any, storage_dir: Path, dr_app: Any) -> None:
    task_id = await start_gated(api, "delete units=2")
    response = await api("DELETE", "tasks", task_id)
    assert response.code == 204
    assert (await api("GET", "tasks", task_id)).code == 404
    await dr_app.manager.store.flush()
    assert not [p for p in storage_dir.iterdir() if p.name.startswith(task_id)]
    assert (await api("DELETE", "tasks", task_id)).code == 404


@pytest.mark.parametrize(
    "dr_config", [{"pipeline": "dr_testing.pipelines:stepped", "max_concurrent_tasks": 2}]
)
async def test_queue_limits_concurrency_and_starts_in_order(api: Any) -> None:
    queries = [f"queue-{n} units=1" for n in range(4)]
    for query in queries:
        GATES[query] = asyncio.Event()
    ids = []
    for query in queries:
        ids.append(body(await api("POST", "tasks", body={"query": query}))["task_id"])
    await wait_status(api, ids[0], "running")
    await wait_status(api, ids[1], "running")
    statuses = [body(await api("GET", "tasks", i))["status"] for i in ids]
    assert statuses == ["running", "running", "queued", "queued"]
    GATES[queries[1]].set()
    await wait_status(api, ids[1], "completed")
    await wait_status(api, ids[2], "running")
    assert body(await api("GET", "tasks", ids[3]))["status"] == "queued"
    for query in queries:
        GATES[query].set()
    for task_id in ids:
        await wait_status(api, task_id, "completed")


@pytest.mark.parametrize(
    "dr_config", [{"pipeline": "dr_testing.pipelines:stepped", "max_concurrent_tasks": 1}]
)
async def test_pausing_a_queued_task_takes_it_out_of_the_queue(api: Any, dr_app: Any) -> None:
    first = await start_gated(api, "q-first units=1")
    second = body(await api("POST", "tasks", body={"query": "q-second units=1"}))["task_id"]
    assert body(await api("GET", "tasks", second))["status"] == "queued"
    assert body(await api("POST", "tasks", second, "pause"))["status"] == "paused"
    GATES["q-first units=1"].set()
    await wait_status(api, first, "completed")
    await asyncio.sleep(0.2)
    assert body(await api("GET", "tasks", second))["status"] == "paused"


async def test_list_filters_and_orders_newest_first(api: Any) -> None:
    ids = []
    for n in range(3):
        ids.append(body(await api("POST", "tasks", body={"query": f"list-{n} units=1"}))["task_id"])
        await wait_status(api, ids[-1], "completed")
    listed = body(await api("GET", "tasks"))["tasks"]
    assert [t["task_id"] for t in listed] == ids[::-1]
    limited = body(await api("GET", "tasks", params={"limit": "2"}))["tasks"]
    assert [t["task_id"] for t in limited] == ids[:0:-1]
    assert body(await api("GET", "tasks", params={"status": "running"}))["tasks"] == []
    assert len(body(await api("GET", "tasks", params={"status": "completed"}))["tasks"]) == 3


async def test_missing_credentials_pause_until_resubmitted_with_a_key(api: Any) -> None:
    query = "needs-key units=1"
    task_id = body(await api("POST", "tasks", body={"query": query}))["task_id"]
    paused = await wait_status(api, task_id, "paused")
    assert "api_key" in paused["message"]
    again = await api(
        "POST", "tasks", body={"query": query, "ai": {"provider": "extractive", "api_key": "k"}}
    )
    assert body(again)["task_id"] == task_id
    await wait_status(api, task_id, "completed")
