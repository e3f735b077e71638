"""A configured secret goes only to the URL configured with it; `allowed_base_urls` pins the URLs
a request may name. In the server, and in the headless worker that resumes stored tasks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from research.research_fakes import FakeLLM, FakeSearXNG

from dr_testing.waiting import wait_status
from dr_testing.worker import WorkerProcess
from jupyter_deepresearch.extension.fingerprint import task_id_for
from jupyter_deepresearch.extension.models import ResearchRequest, Status, public_request
from jupyter_deepresearch.extension.store.base import TaskState
from jupyter_deepresearch.extension.store.files import FileTaskStore

REAL = "jupyter_deepresearch.extension.research:run_research"
AI_KEY = "sk-CONFIG-ai-0123456789"
SEARCH_KEY = "sk-CONFIG-search-0123456789"
SMALL = {"breadth": 1, "depth": 1}


def _serve(server: FakeLLM | FakeSearXNG) -> Iterator[Any]:
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gateway() -> Iterator[FakeLLM]:
    """The administrator's LLM gateway: it requires the configured key."""
    server = FakeLLM()
    server.api_key = AI_KEY
    yield from _serve(server)


@pytest.fixture
def attacker() -> Iterator[FakeLLM]:
    yield from _serve(FakeLLM())


@pytest.fixture
def searx() -> Iterator[FakeSearXNG]:
    yield from _serve(FakeSearXNG())


@pytest.fixture
def evil_searx() -> Iterator[FakeSearXNG]:
    yield from _serve(FakeSearXNG())


def defaults(gateway: FakeLLM, searx: FakeSearXNG) -> dict[str, Any]:
    return {
        "default_ai": {
            "provider": "openai-compatible",
            "base_url": f"{gateway.url}/v1",
            "model": "m",
            "api_key": AI_KEY,
        },
        "default_search": {"provider": "searxng", "base_url": searx.url, "api_key": SEARCH_KEY},
    }


@pytest.fixture
def dr_config(gateway: FakeLLM, searx: FakeSearXNG) -> dict[str, Any]:
    return {"pipeline": REAL, **defaults(gateway, searx)}


async def run(api: Any, request: dict[str, Any]) -> dict[str, Any]:
    created = await api(
        "POST", "tasks", body={"query": "Who gets the key?", "report": SMALL, **request}
    )
    assert created.code == 201, created.body
    task_id = json.loads(created.body)["task_id"]
    info: dict[str, Any] = await wait_status(api, task_id, "completed", "failed", "paused")
    return info


def auths(server: FakeLLM | FakeSearXNG) -> set[str | None]:
    with server.lock:
        return {r["auth"] for r in server.requests}


async def test_configured_ai_key_is_not_sent_to_another_path_on_its_host(
    api: Any, gateway: FakeLLM
) -> None:
    # The case: the request points the same host at another path.
    info = await run(api, {"ai": {"base_url": f"{gateway.url}/attacker/v1"}})
    with gateway.lock:
        chosen = [r for r in gateway.requests if r["path"].startswith("/attacker/")]
    assert chosen, "the request's URL was never called"
    assert {r["auth"] for r in chosen} == {None}
    # Without a key of its own the gateway refuses it: paused, asking for a key.
    assert info["status"] == "paused" and "ai.api_key" in info["message"]


async def test_configured_ai_key_is_not_sent_to_another_host(
    api: Any, gateway: FakeLLM, attacker: FakeLLM, searx: FakeSearXNG
) -> None:
    info = await run(api, {"ai": {"base_url": f"{attacker.url}/v1"}})
    assert info["status"] == "completed", info
    assert attacker.calls() > 0 and auths(attacker) == {None}
    assert gateway.calls() == 0
    assert auths(searx) == {f"Bearer {SEARCH_KEY}"}  # the search section was left as configured


async def test_configured_search_key_is_not_sent_to_a_url_the_request_picks(
    api: Any, gateway: FakeLLM, searx: FakeSearXNG, evil_searx: FakeSearXNG
) -> None:
    info = await run(api, {"search": {"base_url": evil_searx.url}})
    assert info["status"] == "completed", info
    assert evil_searx.requests and auths(evil_searx) == {None}
    assert not searx.requests
    assert auths(gateway) == {f"Bearer {AI_KEY}"}


async def test_request_repeating_the_configured_urls_keeps_the_keys(
    api: Any, gateway: FakeLLM, searx: FakeSearXNG
) -> None:
    # The same endpoint, spelled differently (a trailing slash).
    request = {"ai": {"base_url": f"{gateway.url}/v1/"}, "search": {"base_url": f"{searx.url}/"}}
    info = await run(api, request)
    assert info["status"] == "completed", info
    assert auths(gateway) == {f"Bearer {AI_KEY}"}
    assert auths(searx) == {f"Bearer {SEARCH_KEY}"}


async def test_request_with_its_own_key_sends_it_to_its_own_url(
    api: Any, gateway: FakeLLM, attacker: FakeLLM
) -> None:
    info = await run(api, {"ai": {"base_url": f"{attacker.url}/v1", "api_key": "sk-users-own-key"}})
    assert info["status"] == "completed", info
    assert auths(attacker) == {"Bearer sk-users-own-key"}
    assert gateway.calls() == 0


class TestAllowedBaseURLs:
    """An administrator pins requests to the hub's own provider URLs."""

    @pytest.fixture
    def dr_config(self, gateway: FakeLLM, searx: FakeSearXNG, attacker: FakeLLM) -> dict[str, Any]:
        # The defaults' own URLs are deliberately not listed: they are always allowed.
        return {
            "pipeline": REAL,
            **defaults(gateway, searx),
            "allowed_base_urls": [f"{attacker.url}/allowed/*"],
        }

    @pytest.mark.parametrize(
        "section", [{"ai": {"base_url": "{attacker}/v1"}}, {"search": {"base_url": "{evil}"}}]
    )
    async def test_url_outside_the_list_is_403_naming_the_setting(
        self,
        api: Any,
        attacker: FakeLLM,
        evil_searx: FakeSearXNG,
        section: dict[str, Any],
    ) -> None:
        request = json.loads(
            json.dumps(section)
            .replace("{attacker}", attacker.url)
            .replace("{evil}", evil_searx.url)
        )
        response = await api("POST", "tasks", body={"query": "pinned", **request})
        assert response.code == 403, response.body
        name = next(iter(section))
        message = json.loads(response.body)["message"]
        assert f"{name}.base_url" in message and "allowed_base_urls" in message
        assert json.loads((await api("GET", "tasks")).body)["tasks"] == []
        assert attacker.calls() == 0 and not evil_searx.requests

    async def test_user_info_cannot_smuggle_another_host_past_a_pattern(
        self, api: Any, attacker: FakeLLM, evil_searx: FakeSearXNG
    ) -> None:
        # `http://127.0.0.1:A/allowed@127.0.0.1:B/` connects to B; it is matched as B.
        host = evil_searx.url.removeprefix("http://")
        smuggled = f"{attacker.url}/allowed@{host}/v1"
        response = await api(
            "POST", "tasks", body={"query": "pinned", "ai": {"base_url": smuggled}}
        )
        assert response.code == 403, response.body

    async def test_listed_and_configured_urls_are_accepted(
        self, api: Any, gateway: FakeLLM, attacker: FakeLLM
    ) -> None:
        listed = await run(api, {"ai": {"base_url": f"{attacker.url}/allowed/v1"}})
        assert listed["status"] == "completed", listed
        assert auths(attacker) == {None}
        configured = await run(api, {"ai": {"base_url": f"{gateway.url}/v1"}, "query": "again"})
        assert configured["status"] == "completed", configured


@pytest.mark.slow
def test_worker_does_not_send_a_configured_key_to_a_stored_tasks_url(
    tmp_path: Path, gateway: FakeLLM, attacker: FakeLLM, searx: FakeSearXNG
) -> None:
    """A task a stopped server left queued names its own URL; the worker resumes it with its
    configuration's defaults, and must not hand the configured key to that URL."""
    storage = tmp_path / "tasks"
    request = ResearchRequest.model_validate(
        {
            "query": "Headless, who gets the key?",
            "ai": {"provider": "openai-compatible", "model": "m", "base_url": f"{attacker.url}/v1"},
            "search": {"provider": "searxng", "base_url": searx.url},
            "report": SMALL,
        }
    )
    task_id = task_id_for(request)

    async def leave_queued() -> None:
        store = FileTaskStore(storage)
        await store.open()
        await store.create(TaskState(task_id=task_id, request=public_request(request)))
        await store.close()

    async def status() -> Status:
        store = FileTaskStore(storage)
        state = await store.peek(task_id)
        assert state is not None
        return state.status

    asyncio.run(leave_queued())
    workdir = tmp_path / "worker"
    (workdir / "config").mkdir(parents=True)
    config = {"DeepResearchApp": defaults(gateway, searx)}
    (workdir / "config" / "jupyter_server_config.json").write_text(json.dumps(config))
    worker = WorkerProcess(
        workdir, [f"--storage-dir={storage}", "--lease-seconds=2", "--flush-interval=0.05"]
    ).start()
    try:
        deadline = time.monotonic() + 60
        while asyncio.run(status()) not in (Status.completed, Status.failed, Status.paused):
            assert worker.process is not None and worker.process.poll() is None, worker.log()
            assert time.monotonic() < deadline, f"worker did not run the task: {worker.log()}"
            time.sleep(0.1)
    finally:
        assert worker.stop() == 0, worker.log()
    assert asyncio.run(status()) is Status.completed, worker.log()
    assert attacker.calls() > 0 and auths(attacker) == {None}
    assert gateway.calls() == 0
    assert auths(searx) == {f"Bearer {SEARCH_KEY}"}  # its configured URL: its configured key
    assert AI_KEY not in worker.log() and SEARCH_KEY not in worker.log()
