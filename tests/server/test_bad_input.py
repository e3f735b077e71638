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


# Outside the one id rule (`extension/ids.py`): a path separator or dot, a colon (a Redis key
# of another kind), upper case (one file on a case-insensitive disk), a line end, too long.
MALFORMED_IDS = ["..%2Fx", "a.json", "a:b", "A" * 32, "abc%0A", "%C3%A9", "a%20b", "a" * 129]


@pytest.mark.parametrize("bad_id", MALFORMED_IDS)
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


@pytest.mark.parametrize(
    "missing", ["0" * 32, "abc123def456", "g" * 32, pytest.param("a" * 128, id="128"), "x_y-z"]
)
async def test_unknown_id_is_404(api: Any, missing: str) -> None:
    for method, parts in [
        ("GET", ("tasks", missing)),
        ("GET", ("tasks", missing, "events")),
        ("POST", ("tasks", missing, "resume")),
        ("DELETE", ("tasks", missing)),
    ]:
        response = await api(method, *parts)
        assert response.code == 404, (method, parts)
        assert missing in message(response)


# Digits that are not ASCII (`"²".isdigit()` is true, `int("²")` fails; `int("٣")` is 3), and
# numbers too long for `int()` (over 4,300 digits) or for a 64-bit counter.
ODD_NUMBERS = [
    pytest.param(value, id=name)
    for name, value in {
        "superscript-two": "\u00b2",
        "arabic-indic-three": "\u0663",
        "fullwidth-one": "\uff11",
        "5000-digits": "9" * 5_000,
        "20-digits": "9" * 20,
        "plus": "+1",
        "inner-space": "1 2",
        "underscore": "1_0",
        "decimal-point": "1.0",
        "hex": "0x1",
    }.items()
]


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"status": "sleeping"}, "status"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"limit": "0"}, "limit"),
        *[pytest.param({"limit": odd.values[0]}, "limit", id=odd.id) for odd in ODD_NUMBERS],
    ],
)
async def test_bad_list_filters_are_400(api: Any, params: dict, needle: str) -> None:
    response = await api("GET", "tasks", params=params)
    assert response.code == 400, response.body[:200]
    assert needle in message(response)
    assert len(message(response)) < 300  # a 5,000-digit value is not echoed whole


async def test_largest_limit_is_accepted(api: Any) -> None:
    response = await api("GET", "tasks", params={"limit": str(2**63 - 1)})
    assert response.code == 200


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


@pytest.mark.parametrize("odd", ODD_NUMBERS)
async def test_odd_resume_points_are_400(api: Any, odd: str) -> None:
    task_id = json.loads((await api("POST", "tasks", body={"query": "odd-after units=1"})).body)[
        "task_id"
    ]
    response = await api("GET", "tasks", task_id, "events", params={"after": odd})
    assert response.code == 400, response.body[:200]
    assert "after" in message(response)
    # A header travels as bytes: send the UTF-8 of the value, as a browser would.
    header = odd.encode().decode("latin-1")
    response = await api("GET", "tasks", task_id, "events", headers={"Last-Event-ID": header})
    assert response.code == 400, response.body[:200]
    assert "Last-Event-ID" in message(response)


async def test_research_with_a_bad_resume_point_creates_nothing(
    api: Any, storage_dir: Path
) -> None:
    """Regression: `POST research` checked `Last-Event-ID` after it had created the task."""
    body = {"query": "bad resume point units=1"}
    response = await api("POST", "research", body=body, headers={"Last-Event-ID": "abc"})
    assert response.code == 400
    assert "Last-Event-ID" in message(response)
    assert not list(storage_dir.iterdir())
    assert json.loads((await api("GET", "tasks")).body)["tasks"] == []


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


@pytest.mark.parametrize("route", ["tasks", "research"])
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('{"query":"x","ai":' + nested(1_000) + "}", id="2KB-arrays-in-ai"),
        pytest.param('{"query":"x","ai":' + nested(100_000) + "}", id="200KB-arrays-in-ai"),
        pytest.param(nested(1_000), id="arrays-at-the-top"),
        pytest.param(
            '{"query":"x","ai":' + '{"a":' * 1_000 + "1" + "}" * 1_000 + "}", id="objects-in-ai"
        ),
        pytest.param(
            '{"query":"x","search":{"sources":' + nested(1_000) + "}}", id="arrays-in-sources"
        ),
    ],
)
async def test_deeply_nested_body_is_400(api: Any, storage_dir: Path, route: str, raw: str) -> None:
    """Regression: `json.loads` raised RecursionError (a 500) on 1,000 nested arrays."""
    response = await api("POST", route, body=raw)
    assert response.code == 400, response.body[:200]
    assert "nested" in message(response)
    assert not list(storage_dir.iterdir())


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
