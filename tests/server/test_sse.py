"""The SSE stream: ids, resume points, keepalives, closing, 204, follow=false, one-shot form."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from dr_testing.pipelines import GATES
from dr_testing.waiting import eventually
from jupyter_deepresearch.extension.tasks.events import EventHub


async def create(http: httpx.AsyncClient, query: str) -> str:
    response = await http.post("tasks", json={"query": query})
    assert response.status_code in (200, 201), response.text
    return str(response.json()["task_id"])


async def collect(http: httpx.AsyncClient, path: str, **kwargs: Any) -> list[ServerSentEvent]:
    """Every event with an id, until the server closes the stream."""
    events = []
    async with aconnect_sse(http, "GET", path, **kwargs) as source:
        assert source.response.status_code == 200
        async for sse in source.aiter_sse():
            if sse.id:
                events.append(sse)
    return events


def decode_in_chunks(raw: bytes, rng: random.Random) -> list[ServerSentEvent]:
    """Parse a stream with httpx-sse's decoders fed chunks cut at random places."""
    lines, decoder, events = SSELineDecoder(), SSEDecoder(), []
    text = raw.decode()
    position = 0
    while position < len(text):
        size = rng.randint(1, 9)
        for line in lines.decode(text[position : position + size]):
            sse = decoder.decode(line)
            if sse is not None and sse.id:
                events.append(sse)
        position += size
    for line in lines.flush():
        sse = decoder.decode(line)
        if sse is not None and sse.id:
            events.append(sse)
    return events


async def test_stream_has_consecutive_ids_and_typed_events(http: httpx.AsyncClient) -> None:
    task_id = await create(http, "sse units=3")
    events = await collect(http, f"tasks/{task_id}/events")
    ids = [int(e.id) for e in events]
    assert ids == list(range(1, len(ids) + 1))
    assert events[0].event == "status" and events[0].json() == {"status": "queued"}
    assert events[1].json() == {"status": "running"}
    assert events[-1].event == "status" and events[-1].json()["status"] == "completed"
    assert events[-2].event == "result"
    outputs = [e.json()["text"] for e in events if e.event == "output"]
    assert outputs == [f"Unit {n} of 'sse units=3' done." for n in range(3)]
    percentages = [e.json()["percentage"] for e in events if e.event == "progress"]
    assert percentages == sorted(percentages) and percentages[-1] == 100
    info = (await http.get(f"tasks/{task_id}")).json()
    assert info["last_event_id"] == ids[-1]


async def test_stream_headers_and_retry(http: httpx.AsyncClient) -> None:
    task_id = await create(http, "headers units=1")
    async with http.stream("GET", f"tasks/{task_id}/events") as response:
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["x-task-id"] == task_id
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert raw.startswith(b"retry: 3000\n\n")
    assert raw.endswith(b"\n\n")


async def test_resume_points_have_no_gap_and_no_duplicate(http: httpx.AsyncClient) -> None:
    task_id = await create(http, "resume units=4")
    await wait_status_http(http, task_id, "completed")
    everything = await collect(http, f"tasks/{task_id}/events")
    last = int(everything[-1].id)
    for after in (0, 1, 3, last - 2, last - 1):
        by_query = await collect(http, f"tasks/{task_id}/events", params={"after": after})
        by_header = await collect(
            http, f"tasks/{task_id}/events", headers={"Last-Event-ID": str(after)}
        )
        expected = [(e.id, e.event, e.data) for e in everything if int(e.id) > after]
        assert [(e.id, e.event, e.data) for e in by_query] == expected
        assert [(e.id, e.event, e.data) for e in by_header] == expected
    # Both given: the header wins (a reconnecting browser keeps its original URL).
    both = await collect(
        http, f"tasks/{task_id}/events", params={"after": 1}, headers={"Last-Event-ID": "5"}
    )
    assert int(both[0].id) == 6


async def test_reconnect_with_nothing_left_gets_204(http: httpx.AsyncClient) -> None:
    task_id = await create(http, "nothing-left units=1")
    done = await wait_status_http(http, task_id, "completed")
    response = await http.get(
        f"tasks/{task_id}/events", headers={"Last-Event-ID": str(done["last_event_id"])}
    )
    assert response.status_code == 204
    assert response.content == b""


async def test_chunks_that_split_lines_parse_the_same(http: httpx.AsyncClient) -> None:
    task_id = await create(http, "chunks units=3 multi\nline")
    await wait_status_http(http, task_id, "completed")
    raw = (await http.get(f"tasks/{task_id}/events")).content
    whole = [(e.id, e.event, e.data) for e in decode_in_chunks(raw, random.Random(0))]
    for seed in range(1, 6):
        assert [
            (e.id, e.event, e.data) for e in decode_in_chunks(raw, random.Random(seed))
        ] == whole
    assert [int(i) for i, _, _ in whole] == list(range(1, len(whole) + 1))


async def test_follow_false_sends_stored_events_and_closes(http: httpx.AsyncClient) -> None:
    query = "no-follow units=3"
    GATES[query] = asyncio.Event()
    try:
        task_id = await create(http, query)
        await wait_status_http(http, task_id, "running")
        events = await asyncio.wait_for(
            collect(http, f"tasks/{task_id}/events", params={"follow": "false"}), 10
        )
        assert [e.json()["status"] for e in events if e.event == "status"] == ["queued", "running"]
    finally:
        GATES[query].set()


async def test_keepalive_comments_while_idle(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EventHub, "keepalive_seconds", 0.2)
    query = "keepalive units=1"
    GATES[query] = asyncio.Event()
    try:
        task_id = await create(http, query)
        await wait_status_http(http, task_id, "running")
        received = b""
        async with http.stream("GET", f"tasks/{task_id}/events") as response:
            async for chunk in response.aiter_bytes():
                received += chunk
                if received.count(b": keepalive\n") >= 2:
                    break
        assert b"event: status" in received
    finally:
        GATES[query].set()


async def test_dropped_stream_leaves_task_running_to_completion(http: httpx.AsyncClient) -> None:
    task_id = await create(http, "drop units=4 delay=0.1")
    async with aconnect_sse(http, "GET", f"tasks/{task_id}/events") as source:
        async for sse in source.aiter_sse():
            if sse.event == "output":
                break  # the client goes away mid-task
    done = await wait_status_http(http, task_id, "completed")
    assert done["attempts"] == 1
    assert done["result"]["report"].count("[1]") == 4


async def test_one_shot_research_route_streams_the_task(http: httpx.AsyncClient) -> None:
    body = {"query": "one-shot units=2"}
    async with aconnect_sse(http, "POST", "research", json=body) as source:
        assert source.response.status_code == 201
        task_id = source.response.headers["x-task-id"]
        events = [sse async for sse in source.aiter_sse() if sse.id]
    assert events[-1].json()["status"] == "completed"
    # The same request again attaches (200) and replays the same events.
    async with aconnect_sse(http, "POST", "research", json=body) as source:
        assert source.response.status_code == 200
        assert source.response.headers["x-task-id"] == task_id
        again = [sse async for sse in source.aiter_sse() if sse.id]
    assert [(e.id, e.data) for e in again] == [(e.id, e.data) for e in events]


async def wait_status_http(http: httpx.AsyncClient, task_id: str, *statuses: str) -> Any:
    async def probe() -> Any:
        info = (await http.get(f"tasks/{task_id}")).json()
        return info if info["status"] in statuses else None

    return await eventually(probe)


def test_event_data_is_compact_json() -> None:
    from jupyter_deepresearch.extension.sse import encode_event

    raw = encode_event(7, "output", {"text": "a\nb"})
    assert raw == b'id: 7\nevent: output\ndata: {"text":"a\\nb"}\n\n'
    assert json.loads(raw.split(b"data: ")[1]) == {"text": "a\nb"}


async def test_dropped_one_shot_post_leaves_task_running_to_completion(
    http: httpx.AsyncClient,
) -> None:
    body = {"query": "drop-post units=4 delay=0.1"}
    async with aconnect_sse(http, "POST", "research", json=body) as source:
        task_id = source.response.headers["x-task-id"]
        async for sse in source.aiter_sse():
            if sse.event == "output":
                break  # the notebook tab closes mid-research
    done = await wait_status_http(http, task_id, "completed")
    assert done["attempts"] == 1
    assert done["result"]["report"].count("[1]") == 4
