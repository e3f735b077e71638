"""Anything a client can send gets a 4xx naming the problem, never a 500, and stores nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def message(response: Any) -> str:
    return str(json.loads(response.body)["message"])


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"query": "x", "colour": "blue"}, "colour"),
        ({"query": "x", "ai": {"provider": "extractive", "temp": 1}}, "ai.temp"),
        ({"query": 42}, "query"),
        ({"query": ""}, "query"),
        ({"query": "   \n "}, "query"),
        ({"query": "x" * 10_001}, "query"),
        ({}, "query"),
        ({"query": "x", "report": {"breadth": "3"}}, "report.breadth"),
        ({"query": "x", "report": {"depth": 0}}, "report.depth"),
        ({"query": "x", "ai": {"temperature": 9}}, "ai.temperature"),
        ({"query": "x", "search": {"max_results": 0}}, "search.max_results"),
        ({"query": "x", "restart": "yes"}, "restart"),
        ({"query": "x", "ai": "extractive"}, "ai"),
        ({"query": "x", "ai": {"provider": "no-such-llm"}}, "ai.provider"),
        ({"query": "x", "search": {"provider": "no-such-engine"}}, "search.provider"),
        ({"query": "x", "search": {"sources": ["../outside"]}}, "search.sources"),
    ],
)
async def test_invalid_request_is_400_naming_the_field(
    api: Any, storage_dir: Path, payload: dict, field: str
) -> None:
    response = await api("POST", "tasks", body=payload)
    assert response.code == 400, response.body
    assert field in message(response)
    assert not list(storage_dir.iterdir())


async def test_query_of_exactly_the_limit_is_accepted(api: Any) -> None:
    response = await api("POST", "tasks", body={"query": "units=1 " + "y" * 9_992})
    assert response.code == 201


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"query"', "", "\xff\xfe"])
async def test_malformed_json_is_400(api: Any, raw: str) -> None:
    response = await api("POST", "tasks", body=raw.encode("latin-1"))
    assert response.code == 400
    assert message(response)


@pytest.mark.parametrize(
    "dr_config", [{"pipeline": "dr_testing.pipelines:stepped", "max_body_bytes": 200}]
)
async def test_body_over_the_limit_is_413(api: Any) -> None:
    response = await api("POST", "tasks", body={"query": "z" * 300})
    assert response.code == 413
    assert "limit is 200" in message(response)


@pytest.mark.parametrize("bad_id", ["..%2Fx", "a" * 31, "a" * 300, "A" * 32, "g" * 32])
async def test_malformed_ids_are_400(api: Any, bad_id: str) -> None:
    for method, parts in [
        ("GET", ("tasks", bad_id)),
        ("GET", ("tasks", bad_id, "events")),
        ("POST", ("tasks", bad_id, "pause")),
        ("DELETE", ("tasks", bad_id)),
    ]:
        response = await api(method, *parts)
        assert response.code == 400, (method, parts, response.code)
        assert "Malformed task id" in message(response)


async def test_unknown_id_is_404(api: Any) -> None:
    missing = "0" * 32
    for method, parts in [
        ("GET", ("tasks", missing)),
        ("GET", ("tasks", missing, "events")),
        ("POST", ("tasks", missing, "resume")),
        ("DELETE", ("tasks", missing)),
    ]:
        response = await api(method, *parts)
        assert response.code == 404, (method, parts)
        assert missing in message(response)


@pytest.mark.parametrize(
    ("params", "needle"),
    [({"status": "sleeping"}, "status"), ({"limit": "-1"}, "limit"), ({"limit": "x"}, "limit")],
)
async def test_bad_list_filters_are_400(api: Any, params: dict, needle: str) -> None:
    response = await api("GET", "tasks", params=params)
    assert response.code == 400
    assert needle in message(response)


async def test_bad_resume_point_is_400(api: Any) -> None:
    task_id = json.loads((await api("POST", "tasks", body={"query": "resume-point units=1"})).body)[
        "task_id"
    ]
    response = await api("GET", "tasks", task_id, "events", params={"after": "soon"})
    assert response.code == 400
    assert "after" in message(response)
    response = await api("GET", "tasks", task_id, "events", headers={"Last-Event-ID": "-4"})
    assert response.code == 400
    assert "Last-Event-ID" in message(response)


async def test_unpaired_surrogates_are_400(api: Any, storage_dir: Path) -> None:
    raw = b'{"query": "x", "ai": {"model": "\\udaaa\\udc68x\\ud800"}}'
    response = await api("POST", "research", body=raw)
    assert response.code == 400
    assert "Unicode" in message(response)
    assert not list(storage_dir.iterdir())


async def test_odd_model_names_make_a_safe_header(api: Any) -> None:
    body = {"query": "header units=1", "ai": {"provider": "extractive", "model": "m\u00f0\nx"}}
    response = await api("POST", "tasks", body=body)
    assert response.code == 201
    assert response.headers["X-Model-Name"] == "m\\xf0\\x0ax"
