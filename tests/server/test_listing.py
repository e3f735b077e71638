"""`GET tasks`: summaries by default, pages with `offset` and `total`, a text filter `q`, and
results only when asked for (`include=result`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dr_testing.waiting import wait_status


def body(response: Any) -> Any:
    return json.loads(response.body)


async def completed_tasks(api: Any, queries: list[str]) -> list[str]:
    ids = []
    for query in queries:
        ids.append(body(await api("POST", "tasks", body={"query": query}))["task_id"])
        await wait_status(api, ids[-1], "completed")
    return ids


async def test_pages_cover_every_task_once_newest_first_with_the_total(api: Any) -> None:
    ids = await completed_tasks(api, [f"page-{n} units=1" for n in range(5)])
    pages = []
    for offset in (0, 2, 4, 6):
        page = body(await api("GET", "tasks", params={"limit": "2", "offset": str(offset)}))
        assert page["total"] == 5
        pages.append([t["task_id"] for t in page["tasks"]])
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1], []]
    assert body(await api("GET", "tasks"))["total"] == 5


async def test_listed_tasks_are_summaries_unless_results_are_asked_for(api: Any) -> None:
    [task_id] = await completed_tasks(api, ["summary units=1"])
    [listed] = body(await api("GET", "tasks"))["tasks"]
    assert "result" not in listed
    assert listed["status"] == "completed" and listed["percentage"] == 100
    assert listed["request"]["query"] == "summary units=1"
    [full] = body(await api("GET", "tasks", params={"include": "result"}))["tasks"]
    assert full["result"] == body(await api("GET", "tasks", task_id))["result"]
    assert full["result"]["report"]


async def test_text_filter_matches_the_query_in_any_case_with_status(api: Any) -> None:
    ids = await completed_tasks(
        api, ["Asyncio cancel units=1", "sorting lists units=1", "more ASYNCIO units=1"]
    )
    found = body(await api("GET", "tasks", params={"q": "asyncio"}))
    assert [t["task_id"] for t in found["tasks"]] == [ids[2], ids[0]]
    assert found["total"] == 2
    one = body(await api("GET", "tasks", params={"q": "asyncio", "limit": "1", "offset": "1"}))
    assert [t["task_id"] for t in one["tasks"]] == [ids[0]] and one["total"] == 2
    assert body(await api("GET", "tasks", params={"q": "asyncio", "status": "failed"})) == {
        "tasks": [],
        "total": 0,
    }
    assert body(await api("GET", "tasks", params={"q": "nothing like it"}))["total"] == 0


async def test_a_listing_shows_a_task_that_changed_since_the_last_one(api: Any) -> None:
    [task_id] = await completed_tasks(api, ["changes units=1"])
    assert body(await api("GET", "tasks"))["tasks"][0]["status"] == "completed"
    again = await api("POST", "tasks", body={"query": "changes units=1", "restart": True})
    assert body(again)["task_id"] == task_id
    [listed] = body(await api("GET", "tasks"))["tasks"]
    assert listed["status"] in ("queued", "running", "completed")
    assert listed["last_event_id"] > 0
    await wait_status(api, task_id, "completed")
    [listed] = body(await api("GET", "tasks"))["tasks"]
    assert listed["status"] == "completed"
    assert listed["attempts"] == 1
    assert listed["last_event_id"] == body(await api("GET", "tasks", task_id))["last_event_id"]
    assert (await api("DELETE", "tasks", task_id)).code == 204
    assert body(await api("GET", "tasks")) == {"tasks": [], "total": 0}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"offset": "-1"}, "offset"),
        ({"offset": "two"}, "offset"),
        ({"include": "report"}, "include"),
        ({"include": ""}, "include"),  # found by schemathesis: an empty value is no "result"
        ({"q": "x" * 1_001}, "q is 1001 characters"),
    ],
)
async def test_bad_listing_parameters_are_400_naming_them(
    api: Any, params: dict[str, str], named: str
) -> None:
    response = await api("GET", "tasks", params=params)
    assert response.code == 400
    assert named in body(response)["message"]
