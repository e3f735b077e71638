"""`restart`: the task's stored request again with `restart: true`. Stored requests hold no
keys, so a restart works through the keys the server has configured; a key the request brought
itself is gone, and the restarted task waits for it (exit status 4)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from research.research_fakes import FakeLLM, FakeSearXNG

from dr_testing.cli import run, server_args
from dr_testing.servers import ServerProcess

REAL = "jupyter_deepresearch.extension.research:run_research"
AI_KEY = "sk-CONFIG-ai-0123456789"
SEARCH_KEY = "sk-CONFIG-search-0123456789"
OWN_KEY = "sk-users-own-0123456789"


def served(fake: FakeLLM | FakeSearXNG) -> Iterator[Any]:
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway() -> Iterator[FakeLLM]:
    """The administrator's LLM gateway: it refuses requests without the configured key."""
    fake = FakeLLM()
    fake.api_key = AI_KEY
    yield from served(fake)


@pytest.fixture(scope="module")
def searx() -> Iterator[FakeSearXNG]:
    yield from served(FakeSearXNG())


@pytest.fixture(scope="module")
def own_llm() -> Iterator[FakeLLM]:
    """A provider the user brings with their own key (the server has none for it)."""
    fake = FakeLLM()
    fake.api_key = OWN_KEY
    yield from served(fake)


@pytest.fixture(scope="module")
def keyed_server(
    tmp_path_factory: pytest.TempPathFactory, gateway: FakeLLM, searx: FakeSearXNG
) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("cli-keys")
    settings = {
        "pipeline": REAL,
        "default_ai": {
            "provider": "openai-compatible",
            "base_url": f"{gateway.url}/v1",
            "model": "m",
            "api_key": AI_KEY,
        },
        "default_search": {"provider": "searxng", "base_url": searx.url, "api_key": SEARCH_KEY},
    }
    process = ServerProcess(base / "srv", base / "tasks", settings=settings)
    yield process.start()
    process.stop()


def auths(fake: FakeLLM | FakeSearXNG) -> set[str | None]:
    with fake.lock:
        return {r["auth"] for r in fake.requests}


def test_restart_uses_the_configured_keys_again(
    keyed_server: ServerProcess,
    gateway: FakeLLM,
    searx: FakeSearXNG,
    env: dict[str, str],
) -> None:
    at = server_args(keyed_server)
    question = ["Who keeps the key?", "--breadth=1", "--depth=1"]
    first = run(["submit", *question, "--wait", "--json-output", *at], env)
    assert first.returncode == 0, first.stderr
    stored = json.loads(first.stdout)
    assert "api_key" not in stored["request"]["ai"]  # nothing secret to send back
    task_id = stored["task_id"]
    calls = gateway.calls()

    again = run(["restart", task_id, "--wait", "--json", *at], env)
    assert again.returncode == 0, again.stderr
    info = json.loads(again.stdout)
    assert info["task_id"] == task_id and info["status"] == "completed"
    assert info["attempts"] == 1  # a new run, not a resumed one
    assert gateway.calls() > calls  # it ran again, with the keys from the configuration
    assert auths(gateway) == {f"Bearer {AI_KEY}"}
    assert auths(searx) == {f"Bearer {SEARCH_KEY}"}


def test_restart_of_a_request_that_brought_its_own_key_waits_for_it(
    keyed_server: ServerProcess, own_llm: FakeLLM, env: dict[str, str]
) -> None:
    at = server_args(keyed_server)
    body = {
        "query": "Whose key is it?",
        "ai": {
            "provider": "openai-compatible",
            "base_url": f"{own_llm.url}/v1",
            "api_key": OWN_KEY,
        },
        "report": {"breadth": 1, "depth": 1},
    }
    done = run(["submit", "--json", "-", "--wait", "--quiet", *at], env, stdin=json.dumps(body))
    assert done.returncode == 0, done.stderr
    task_id = run(["submit", "--json", json.dumps(body), *at], env).stdout.strip()

    again = run(["restart", task_id, "--wait", *at], env)
    assert again.returncode == 4, again.stderr
    assert "[paused]" in again.stderr and "api_key" in again.stderr
    assert f"resume {task_id}" in again.stderr
