"""Create-or-attach: DESIGN.md's table of existing statuses, dedup under concurrency, restart."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from dr_testing.pipelines import GATES, UNIT_CALLS
from dr_testing.waiting import wait_status


def body(response: Any) -> Any:
    return json.loads(response.body)


async def test_post_creates_task_with_headers_then_completes(api: Any) -> None:
    response = await api("POST", "tasks", body={"query": "create units=2"})
    assert response.code == 201
    info = body(response)
    task_id = info["task_id"]
    assert len(task_id) == 32
    assert response.headers["X-Task-ID"] == task_id
    assert response.headers["X-Model-Name"] == "extractive"
    assert response.headers["Location"].endswith(f"/api/deepresearch/tasks/{task_id}")
    assert len(response.headers["X-Request-ID"]) == 32
    assert info["status"] in ("queued", "running")
    assert info["request"]["query"] == "create units=2"
    done = await wait_status(api, task_id, "completed")
    assert done["percentage"] == 100
    assert done["attempts"] == 1
    assert "Unit 1 of" in done["result"]["report"]
    assert done["result"]["sources"] == [{"id": "s1", "title": "Scripted", "url": "test:scripted"}]


async def test_request_ids_are_unique_per_http_request(api: Any) -> None:
    first = await api("POST", "tasks", body={"query": "ids units=1"})
    second = await api("POST", "tasks", body={"query": "ids units=1"})
    assert first.headers["X-Task-ID"] == second.headers["X-Task-ID"]
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


async def test_fifty_concurrent_identical_posts_make_one_task(api: Any) -> None:
    query = "dedup units=3 delay=0.05"
    responses = await asyncio.gather(
        *(api("POST", "tasks", body={"query": query}) for _ in range(50))
    )
    codes = sorted(r.code for r in responses)
    assert codes == [200] * 49 + [201]
    assert len({r.headers["X-Task-ID"] for r in responses}) == 1
    task_id = responses[0].headers["X-Task-ID"]
    done = await wait_status(api, task_id, "completed")
    assert done["attempts"] == 1
    assert all(UNIT_CALLS[f"{query}|{unit}"] == 1 for unit in range(3))


async def test_equivalent_spellings_share_a_task(api: Any) -> None:
    first = await api("POST", "tasks", body={"query": "  spelling   units=1 "})
    second = await api(
        "POST",
        "tasks",
        body={
            "query": "spelling units=1",
            "report": {"breadth": 3},
            "ai": {"provider": "extractive"},
        },
    )
    assert first.headers["X-Task-ID"] == second.headers["X-Task-ID"]
    third = await api("POST", "tasks", body={"query": "Spelling units=1"})
    assert third.headers["X-Task-ID"] != first.headers["X-Task-ID"]


async def test_running_task_is_attached_not_restarted(api: Any) -> None:
    query = "attach units=2"
    GATES[query] = asyncio.Event()
    try:
        created = await api("POST", "tasks", body={"query": query})
        task_id = body(created)["task_id"]
        await wait_status(api, task_id, "running")
        again = await api("POST", "tasks", body={"query": query})
        assert again.code == 200
        assert body(again)["status"] == "running"
        assert body(again)["attempts"] == 1
    finally:
        GATES[query].set()
    done = await wait_status(api, task_id, "completed")
    assert done["attempts"] == 1


async def test_completed_task_is_returned_as_is(api: Any) -> None:
    query = "completed units=1"
    task_id = body(await api("POST", "tasks", body={"query": query}))["task_id"]
    done = await wait_status(api, task_id, "completed")
    again = await api("POST", "tasks", body={"query": query})
    assert again.code == 200
    info = body(again)
    assert info["status"] == "completed"
    assert info["result"] == done["result"]
    assert info["last_event_id"] == done["last_event_id"]
    assert UNIT_CALLS[f"{query}|0"] == 1


async def test_failed_task_resumes_from_checkpoint_on_resubmit(api: Any) -> None:
    query = "fails units=3 fail-at=1 fail-once"
    task_id = body(await api("POST", "tasks", body={"query": query}))["task_id"]
    failed = await wait_status(api, task_id, "failed")
    assert failed["error"] == "Unit 1 failed on purpose."
    assert UNIT_CALLS[f"{query}|0"] == 1
    again = await api("POST", "tasks", body={"query": query})
    assert again.code == 200
    done = await wait_status(api, task_id, "completed")
    assert done["attempts"] == 2
    assert done["error"] is None
    assert UNIT_CALLS[f"{query}|0"] == 1
    assert UNIT_CALLS[f"{query}|2"] == 1


async def test_paused_task_resumes_on_resubmit(api: Any) -> None:
    query = "paused units=3"
    GATES[query] = asyncio.Event()
    task_id = body(await api("POST", "tasks", body={"query": query}))["task_id"]
    await wait_status(api, task_id, "running")
    paused = await api("POST", "tasks", task_id, "pause")
    assert paused.code == 200
    assert body(paused)["status"] == "paused"
    GATES[query].set()
    again = await api("POST", "tasks", body={"query": query})
    assert again.code == 200
    assert body(again)["status"] in ("queued", "running")
    done = await wait_status(api, task_id, "completed")
    assert done["attempts"] == 2


async def test_cancelled_task_resumes_on_resubmit(api: Any) -> None:
    query = "cancelled units=2"
    GATES[query] = asyncio.Event()
    task_id = body(await api("POST", "tasks", body={"query": query}))["task_id"]
    await wait_status(api, task_id, "running")
    assert body(await api("POST", "tasks", task_id, "cancel"))["status"] == "cancelled"
    GATES[query].set()
    assert (await api("POST", "tasks", body={"query": query})).code == 200
    assert (await wait_status(api, task_id, "completed"))["attempts"] == 2


async def test_restart_discards_old_run_and_continues_ids(api: Any) -> None:
    query = "restart units=2"
    task_id = body(await api("POST", "tasks", body={"query": query}))["task_id"]
    first = await wait_status(api, task_id, "completed")
    restarted = await api("POST", "tasks", body={"query": query, "restart": True})
    assert restarted.code == 200
    info = body(restarted)
    assert info["status"] in ("queued", "running")
    assert info["result"] is None
    assert info["task_id"] == task_id
    second = await wait_status(api, task_id, "completed")
    assert second["attempts"] == 1
    assert second["last_event_id"] > first["last_event_id"]
    assert UNIT_CALLS[f"{query}|0"] == 2
    # The new run's events start right after the old run's last id.
    events = await api("GET", "tasks", task_id, "events", params={"follow": "false"})
    ids = [int(line[4:]) for line in events.body.decode().splitlines() if line.startswith("id: ")]
    assert ids[0] == first["last_event_id"] + 1
    assert ids == list(range(ids[0], second["last_event_id"] + 1))


async def test_restart_stops_a_run_in_progress(api: Any) -> None:
    query = "restart-running units=2"
    GATES[query] = asyncio.Event()
    task_id = body(await api("POST", "tasks", body={"query": query}))["task_id"]
    await wait_status(api, task_id, "running")
    restarted = await api("POST", "tasks", body={"query": query, "restart": True})
    assert body(restarted)["status"] in ("queued", "running")
    GATES[query].set()
    done = await wait_status(api, task_id, "completed")
    assert done["attempts"] == 1
    assert UNIT_CALLS[f"{query}|0"] == 1
