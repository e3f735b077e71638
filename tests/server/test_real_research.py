"""The real offline pipeline behind the HTTP API: a fresh server answers, and survives a crash."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse, connect_sse

from dr_testing.servers import ServerProcess
from dr_testing.waiting import wait_for

QUESTION = "How does asyncio cancel a task?"


@pytest.fixture
def dr_config() -> dict[str, Any]:
    return {}  # the built-in pipeline, as on a fresh install


async def test_fresh_server_answers_offline_with_citations(http: httpx.AsyncClient) -> None:
    async with aconnect_sse(http, "POST", "research", json={"query": QUESTION}) as source:
        assert source.response.status_code == 201
        events = [sse async for sse in source.aiter_sse() if sse.id]
    kinds = [e.event for e in events]
    assert kinds[0] == "status" and kinds[-1] == "status"
    assert events[-1].json() == {"status": "completed"}
    steps = [e.json()["step"] for e in events if e.event == "progress"]
    assert steps.index("plan") < steps.index("queries") < steps.index("search")
    assert steps.index("search") < steps.index("report")
    result = next(e.json() for e in events if e.event == "result")
    report = result["report"]
    assert "CancelledError" in report
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", report)}
    assert cited and cited <= set(range(1, len(result["sources"]) + 1))
    assert any(s["id"].startswith("python:asyncio") for s in result["sources"])
    # The report grew visibly: several output events before the result.
    assert kinds.count("output") >= 3


SETTINGS = {"pipeline": "dr_testing.pipelines:paced_real", "flush_interval": 0.05}


@pytest.mark.slow
def test_real_pipeline_killed_mid_search_resumes_to_the_same_report(tmp_path: Path) -> None:
    body = {"query": QUESTION, "report": {"breadth": 3, "depth": 2}}
    # One search index for the three servers: building it is not what is tested here.
    settings = {**SETTINGS, "cache_dir": str(tmp_path / "cache")}
    reference = ServerProcess(tmp_path / "ref", tmp_path / "ref-tasks", settings=settings)
    with reference.start().client() as client:
        ref_id = client.post("tasks", json=body).json()["task_id"]
        expected = wait_for(client, ref_id, "completed", timeout=90)
    reference.stop()

    storage = tmp_path / "tasks"
    first = ServerProcess(tmp_path / "a", storage, settings=settings, name="a").start()
    try:
        with first.client() as client:
            task_id = client.post("tasks", json=body).json()["task_id"]
            with connect_sse(client, "GET", f"tasks/{task_id}/events") as source:
                for sse in source.iter_sse():
                    progress = sse.json() if sse.event == "progress" else {}
                    if progress.get("step") == "search" and progress["percentage"] >= 40:
                        break
    finally:
        first.kill()
    snapshot = json.loads((storage / f"{task_id}.json").read_text())
    assert snapshot["progress"]["status"] == "running"

    second = ServerProcess(tmp_path / "b", storage, settings=settings, name="b").start()
    try:
        with second.client() as client:
            done = wait_for(client, task_id, "completed", timeout=90)
            with connect_sse(client, "GET", f"tasks/{task_id}/events") as source:
                ids = [int(sse.id) for sse in source.iter_sse() if sse.id]
    finally:
        second.stop()
    assert done["result"] == expected["result"]
    assert done["attempts"] == 2
    assert ids == list(range(1, len(ids) + 1))
