"""Replay on real servers: a research recorded by alice against (fake) providers, exported, is
answered to another user by a `replay_only` server with identical events and result, while a
listener on the providers' ports proves that nothing contacted them."""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from research.research_fakes import FakeLLM, FakeSearXNG

from dr_testing.cli import run_cli
from dr_testing.servers import ServerProcess
from dr_testing.sse_events import parse_events
from dr_testing.tripwire import Tripwire
from dr_testing.waiting import wait_for, wait_status
from jupyter_deepresearch.extension.fingerprint import task_id_for
from jupyter_deepresearch.extension.models import ResearchRequest, ResearchResult, public_request
from jupyter_deepresearch.extension.recordings import (
    Recording,
    recording_key,
    write_recording,
)
from jupyter_deepresearch.extension.store.base import Event, TaskState
from jupyter_deepresearch.extension.store.files import FileTaskStore

REAL = "jupyter_deepresearch.extension.research:run_research"
AI_MARK, URL_MARK = "Zq8rT4vWp", "Hx5sL2dQe"
AI_KEY = f"sk-{AI_MARK}-0123456789"


@pytest.fixture
def providers() -> Iterator[tuple[FakeLLM, FakeSearXNG]]:
    llm, searx = FakeLLM(), FakeSearXNG()
    llm.start()
    searx.start()
    llm.api_key = AI_KEY
    yield llm, searx
    for fake in (llm, searx):
        if fake.thread.is_alive():
            fake.stop()


def port_of(fake: FakeLLM | FakeSearXNG) -> int:
    return int(fake.httpd.server_address[1])


def body_for(llm_port: int, searx_port: int, query: str = "How are recordings replayed?") -> Any:
    """A request naming its providers, without secrets (those are the server's)."""
    return {
        "query": query,
        "ai": {
            "provider": "openai-compatible",
            "model": "m",
            "base_url": f"http://127.0.0.1:{llm_port}/v1",
        },
        "search": {"provider": "searxng", "base_url": f"http://127.0.0.1:{searx_port}"},
        "report": {"breadth": 1, "depth": 1},
    }


@pytest.fixture
def recorder_config(
    jp_server_config: Any, providers: tuple[FakeLLM, FakeSearXNG]
) -> dict[str, Any]:
    """A live server for several users, its providers' secrets in its configuration."""
    llm, searx = providers
    jp_server_config["ServerApp"]["identity_provider_class"] = (
        "dr_testing.identity.TokenPerUserIdentityProvider"
    )
    settings: dict[str, Any] = jp_server_config["DeepResearchApp"]
    settings.update(
        pipeline=REAL,
        default_ai={
            "provider": "openai-compatible",
            "base_url": f"{llm.url}/v1",
            "model": "m",
            "api_key": AI_KEY,
        },
        default_search={
            "provider": "searxng",
            "base_url": f"http://carol:{URL_MARK}@127.0.0.1:{port_of(searx)}",
        },
    )
    return settings


@pytest.mark.slow
async def test_recorded_by_alice_replays_identically_for_another_user_offline(
    recorder_config: dict[str, Any],
    providers: tuple[FakeLLM, FakeSearXNG],
    jp_fetch: Any,
    dr_app: Any,
    tmp_path: Path,
) -> None:
    llm, searx = providers
    body = body_for(port_of(llm), port_of(searx))
    live = await jp_fetch(
        "api",
        "deepresearch",
        "research",
        method="POST",
        body=json.dumps(body),
        headers={"Authorization": "token token-alice"},
    )
    task_id = live.headers["X-Task-ID"]
    live_events = parse_events(live.body)
    assert live_events[-1][1:] == ("status", {"status": "completed"})
    assert llm.calls() > 0 and searx.requests  # really recorded against the providers

    folder = tmp_path / "recordings"
    exported = run_cli(tmp_path, "export", "--to", str(folder), task_id, settings=recorder_config)
    assert exported.returncode == 0, exported.stderr
    files = {p.name: p.read_text() for p in folder.rglob("*") if p.is_file()}
    assert set(files) == {"task.json", "events.jsonl"}
    for text in files.values():
        for secret in (AI_MARK, URL_MARK, "carol:", "alice"):
            assert secret not in text

    # The providers go away; listeners on their ports count any connection.
    ports = port_of(llm), port_of(searx)
    llm.stop()
    searx.stop()
    wires = [Tripwire(port) for port in ports]
    server = ServerProcess(
        tmp_path / "replayer",
        tmp_path / "replayer" / "tasks",
        settings={"pipeline": REAL, "replay_dir": str(folder), "replay_only": True},
    )
    try:
        server.start()
        with server.client() as client:
            replayed = client.post("research", json=body)
            assert replayed.status_code == 201, replayed.text
            assert parse_events(replayed.content) == live_events
            info = client.get(f"tasks/{replayed.headers['X-Task-ID']}").json()
            alice = {"Authorization": "token token-alice"}
            original = (await jp_fetch("api", "deepresearch", "tasks", task_id, headers=alice)).body
            assert info["owner"] == getpass.getuser() != "alice"
            assert info["task_id"] != task_id  # the user's own task, by the user scope
            assert (info["status"], info["attempts"]) == ("completed", 1)
            assert info["result"] == json.loads(original)["result"]

            # Not recorded: refused at once, saying how to record it, and nothing stored.
            other = client.post("tasks", json=body_for(*ports, query="Something new?"))
            assert other.status_code == 409
            assert "jupyter deepresearch export --to" in other.json()["message"]
            assert "replay_only" in other.json()["message"]
            assert len(client.get("tasks").json()["tasks"]) == 1

            # restart: the recording again, as a new run whose ids continue.
            again = client.post("tasks", json={**body, "restart": True})
            assert again.status_code == 200, again.text
            done = wait_for(client, info["task_id"], "completed")
            rerun = client.get(
                f"tasks/{info['task_id']}/events", params={"after": len(live_events)}
            )
            shift = len(live_events)
            assert parse_events(rerun.content) == [
                (event_id + shift, kind, data) for event_id, kind, data in live_events
            ]
            assert done["result"] == info["result"]
    finally:
        server.stop()
        for wire in wires:
            wire.close()
    assert [wire.connections for wire in wires] == [0, 0], server.log()


@pytest.fixture
def tripwire() -> Iterator[Tripwire]:
    wire = Tripwire()
    yield wire
    wire.close()


@pytest.fixture
def replay_only_config(jp_server_config: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "recordings"
    jp_server_config["DeepResearchApp"].update(
        pipeline=REAL, replay_dir=str(folder), replay_only=True
    )
    return folder


async def test_replay_only_refuses_unrecorded_requests_without_contacting_a_provider(
    replay_only_config: Path, api: Any, tripwire: Tripwire
) -> None:
    body = body_for(tripwire.port, tripwire.port)
    for route in ("tasks", "research"):
        refused = await api("POST", route, body=body)
        assert refused.code == 409, refused.body
        message = json.loads(refused.body)["message"]
        assert f"its replay folder {replay_only_config} does not exist" in message
        assert f"jupyter deepresearch export --to {replay_only_config}" in message
    replay_only_config.mkdir()
    refused = await api("POST", "tasks", body=body)
    key = recording_key(ResearchRequest.model_validate(body))
    assert f"holds no recording of this request (key {key})" in json.loads(refused.body)["message"]
    listed = await api("GET", "tasks")
    assert json.loads(listed.body)["tasks"] == []
    assert tripwire.connections == 0


async def test_damaged_recording_is_a_clear_409_not_a_500(
    replay_only_config: Path, api: Any, tripwire: Tripwire
) -> None:
    body = body_for(tripwire.port, tripwire.port)
    request = ResearchRequest.model_validate(body)
    result = {"report": "# Cut\n", "sources": []}
    events = (Event(1, "status", {"status": "queued"}), Event(2, "result", result))
    path = write_recording(
        replay_only_config,
        Recording(recording_key(request), public_request(request), events, result),
    )
    refused = await api("POST", "tasks", body=body)
    assert refused.code == 409, refused.body
    message = json.loads(refused.body)["message"]
    assert f"Recording {path / 'events.jsonl'} cannot be used" in message
    assert "does not end completed" in message
    assert tripwire.connections == 0


@pytest.fixture
def replay_dir_config(jp_server_config: Any, tmp_path: Path) -> Path:
    """replay_dir without replay_only, over the scripted pipeline (`dr_config`'s default)."""
    folder = tmp_path / "recordings"
    jp_server_config["DeepResearchApp"].update(replay_dir=str(folder))
    return folder


async def test_replay_dir_alone_replays_recorded_requests_and_runs_the_others(
    replay_dir_config: Path, api: Any
) -> None:
    recorded = ResearchRequest(query="A recorded question units=1")
    result = {"report": "# Recorded\n", "sources": []}
    events = (
        Event(1, "status", {"status": "queued"}),
        Event(2, "status", {"status": "running"}),
        Event(3, "progress", {"step": "plan", "percentage": 5, "message": "Recorded plan"}),
        Event(4, "output", {"text": "# Recorded\n"}),
        Event(5, "result", result),
        Event(6, "status", {"status": "completed"}),
    )
    write_recording(
        replay_dir_config,
        Recording(recording_key(recorded), public_request(recorded), events, result),
    )
    replayed = await api("POST", "research", body={"query": "  A recorded   question units=1"})
    # A result recorded before the citation check streams with its fields at their defaults.
    normal = ResearchResult.model_validate(result).model_dump(mode="json")
    expected = [(e.id, e.type, normal if e.type == "result" else e.data) for e in events]
    assert parse_events(replayed.body) == expected

    live = await api("POST", "tasks", body={"query": "A new question units=1"})
    assert live.code == 201, live.body
    done = await wait_status(api, json.loads(live.body)["task_id"], "completed", "failed")
    assert done["status"] == "completed"
    assert done["result"]["report"] != result["report"]


@pytest.fixture
def paused_task(storage_dir: Path) -> str:
    """A task paused by its user, stored before the server starts."""
    request = ResearchRequest(query="Paused before replay_only units=1")

    async def store_it() -> str:
        store = FileTaskStore(storage_dir)
        await store.open()
        try:
            owner = getpass.getuser()
            state = TaskState(
                task_id=task_id_for(request, owner), request=public_request(request), owner=owner
            )
            assert await store.create(state)
            for data in ({"status": "queued"}, {"status": "running"}, {"status": "paused"}):
                await store.append(state, "status", data)
            await store.save(state, durable=True)
            return state.task_id
        finally:
            await store.close()

    return asyncio.run(store_it())


async def test_replay_only_neither_resumes_nor_restarts_unrecorded_tasks(
    paused_task: str, replay_only_config: Path, api: Any
) -> None:
    body = {"query": "Paused before replay_only units=1"}
    for method, route, sent in (
        ("POST", f"tasks/{paused_task}/resume", None),
        ("POST", "tasks", body),
        ("POST", "tasks", {**body, "restart": True}),
    ):
        refused = await api(method, *route.split("/"), body=sent)
        assert refused.code == 409, (route, refused.body)
        assert "replay_only" in json.loads(refused.body)["message"]
    info = json.loads((await api("GET", "tasks", paused_task)).body)
    assert info["status"] == "paused"
