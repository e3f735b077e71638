"""A completed task's result carries the citation check, as `GET tasks/{id}` shows it."""

from __future__ import annotations

from typing import Any

import pytest

from dr_testing.waiting import wait_status


@pytest.fixture
def dr_config() -> dict[str, Any]:
    return {}  # the built-in offline pipeline, as on a fresh install


async def test_completed_offline_task_reports_its_citation_support(api: Any) -> None:
    created = await api("POST", "tasks", body={"query": "How do I parse JSON text?"})
    assert created.code == 201
    task_id = created.headers["X-Task-ID"]
    info = await wait_status(api, task_id, "completed", "failed", timeout=120)
    assert info["status"] == "completed", info.get("error")
    result = info["result"]
    assert result["citation_support"] == 1.0
    citations = result["citations"]
    assert citations and all(c["supported"] for c in citations)
    for check in citations:
        assert set(check) >= {"claim", "sources", "supported", "score"}
        assert check["claim"] and 0.0 <= check["score"] <= 1.0
        assert set(check["sources"]) <= set(range(1, len(result["sources"]) + 1))
    assert "**Citation check:** " in result["report"]
    # The shape clients already read is unchanged.
    assert set(result["sources"][0]) == {"id", "title", "url"}
