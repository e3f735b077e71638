"""Secrets stay secret whatever their characters: keys read with their newline, keys a server
echoes back in an error, credentials inside a provider URL, a traceback quoting a key.

Each test proves absence on every path a text takes: GET, the SSE status events, the task's
files on disk (snapshot and event log) and the server's log.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from research.research_fakes import FakeLLM, FakeSearXNG

from dr_testing.leaks import assert_absent, exposed_texts, log_texts
from dr_testing.waiting import wait_status

REAL = "jupyter_deepresearch.extension.research:run_research"
SMALL = {"breadth": 1, "depth": 1}
# Distinctive pieces of each secret: no escaping (repr, JSON, percent-encoding) changes them,
# so finding one anywhere means a form of the secret got out.
AI_MARK, SEARCH_MARK, URL_MARK, URL_USER = "Zq8rT4vWp", "Mn3pK7yBc", "Hx5sL2dQe", "carol"
AI_KEY = f"sk-{AI_MARK}-0123456789"
SEARCH_KEY = f"sk-{SEARCH_MARK}-0123456789"


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def searx() -> Iterator[FakeSearXNG]:
    server = FakeSearXNG()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def dr_config() -> dict[str, Any]:
    return {"pipeline": REAL}


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, jp_logging_stream: Any, dr_log: Any) -> Iterator[Any]:
    caplog.set_level(logging.DEBUG)
    yield lambda: log_texts(caplog, jp_logging_stream, dr_log)


def body(llm: FakeLLM, searx: FakeSearXNG, *, model: str = "m", **keys: str) -> dict[str, Any]:
    return {
        "query": "Where do secrets go?",
        "ai": {
            "provider": "openai-compatible",
            "model": model,
            "base_url": keys.get("ai_url", f"{llm.url}/v1"),
            **({"api_key": keys["ai_key"]} if "ai_key" in keys else {}),
        },
        "search": {
            "provider": "searxng",
            "base_url": keys.get("search_url", searx.url),
            **({"api_key": keys["search_key"]} if "search_key" in keys else {}),
        },
        "report": SMALL,
    }


@pytest.mark.parametrize(
    "suffix", ["\n", "\r\n", "  ", " \t\n"], ids=["newline", "crlf", "spaces", "mixed"]
)
async def test_key_read_with_its_newline_is_stripped_and_works(
    api: Any,
    dr_app: Any,
    storage_dir: Path,
    llm: FakeLLM,
    searx: FakeSearXNG,
    logs: Any,
    suffix: str,
) -> None:
    # Before: `Illegal header value b'Bearer sk-…\n'` failed the task and was stored, streamed
    # and logged with the key in it.
    llm.api_key = AI_KEY
    request = body(llm, searx, ai_key=AI_KEY + suffix, search_key=" " + SEARCH_KEY + suffix)
    created = await api("POST", "tasks", body=request)
    assert created.code == 201, created.body
    task_id = json.loads(created.body)["task_id"]
    done = await wait_status(api, task_id, "completed", "failed", "paused")
    assert done["status"] == "completed", done
    assert {r["auth"] for r in llm.requests} == {f"Bearer {AI_KEY}"}
    assert {r["auth"] for r in searx.requests} == {f"Bearer {SEARCH_KEY}"}
    texts = await exposed_texts(api, dr_app, task_id, storage_dir)
    assert_absent([AI_MARK, SEARCH_MARK], {**texts, **logs()})


@pytest.mark.parametrize(
    ("field", "secret"),
    [
        ("ai.api_key", f"sk-{AI_MARK}\n-inner"),
        ("ai.api_key", f"sk-{AI_MARK}\x00-nul"),
        ("ai.api_key", f"sk-{AI_MARK}\r\nX-Injected: 1"),
        ("ai.api_key", f"sk-{AI_MARK}-caf\u00e9"),
        ("search.api_key", f"sk-{AI_MARK}\x7f-del"),
    ],
    ids=["inner-newline", "nul", "header-injection", "non-ascii", "search-del"],
)
async def test_key_with_a_control_character_is_refused_without_echo(
    api: Any, llm: FakeLLM, searx: FakeSearXNG, logs: Any, field: str, secret: str
) -> None:
    section = field.split(".")[0]
    request = body(llm, searx, **{f"{section}_key": secret})
    response = await api("POST", "tasks", body=request)
    assert response.code == 400, response.body
    message = json.loads(response.body)["message"]
    assert field in message and "control character" in message
    listing = json.loads((await api("GET", "tasks")).body)
    assert listing["tasks"] == []  # refused before any task existed
    assert_absent([AI_MARK], {"400 body": response.body.decode(), **logs()})


async def test_key_a_provider_echoes_escaped_is_scrubbed_everywhere(
    api: Any, dr_app: Any, storage_dir: Path, llm: FakeLLM, searx: FakeSearXNG, logs: Any
) -> None:
    # The provider's error body quotes the header as Python shows bytes: a backslash in the key
    # comes back doubled, so only a scrubber that knows escaped forms recognises it.
    key = f"sk-{AI_MARK}\\{SEARCH_MARK}"
    created = await api("POST", "tasks", body=body(llm, searx, model="echo-key-repr", ai_key=key))
    task_id = json.loads(created.body)["task_id"]
    failed = await wait_status(api, task_id, "failed")
    assert "HTTP 400" in failed["error"] and "Illegal header value" in failed["error"]
    texts = await exposed_texts(api, dr_app, task_id, storage_dir)
    assert "HTTP 400" in texts["sse-status"]  # the SSE status event carries the error
    assert_absent([AI_MARK, SEARCH_MARK], {**texts, **logs()})


class TestTraceback:
    """An unexpected error quoting a key: status, store, stream and logged traceback."""

    @pytest.fixture
    def dr_config(self) -> dict[str, Any]:
        return {"pipeline": "dr_testing.pipelines:leaky"}

    async def test_internal_error_quoting_a_key_is_scrubbed_everywhere(
        self, api: Any, dr_app: Any, storage_dir: Path, logs: Any
    ) -> None:
        key = f"sk-{AI_MARK}'\\\"{SEARCH_MARK}"
        request = {"query": "leak it", "ai": {"api_key": key}}
        created = await api("POST", "tasks", body=request)
        task_id = json.loads(created.body)["task_id"]
        failed = await wait_status(api, task_id, "failed")
        assert failed["error"].startswith("Internal error: RuntimeError: Illegal header value")
        texts = {**await exposed_texts(api, dr_app, task_id, storage_dir), **logs()}
        assert "Traceback" in texts["log (extension)"]  # the traceback was logged, scrubbed
        assert_absent([AI_MARK, SEARCH_MARK], texts)


async def test_credentials_in_a_provider_url_become_the_auth_header(
    api: Any, dr_app: Any, storage_dir: Path, llm: FakeLLM, searx: FakeSearXNG, logs: Any
) -> None:
    password = f"pw-{URL_MARK}"
    ai_url = f"http://{URL_USER}:{password}@{llm.url.removeprefix('http://')}/v1"
    search_url = f"http://{URL_MARK}@{searx.url.removeprefix('http://')}"  # a token as user
    request = body(llm, searx, ai_url=ai_url, search_url=search_url)
    created = await api("POST", "tasks", body=request)
    assert created.code == 201, created.body
    task_id = json.loads(created.body)["task_id"]
    done = await wait_status(api, task_id, "completed", "failed", "paused")
    assert done["status"] == "completed", done
    # Sent as HTTP clients send URL user-info, but from memory: the URLs kept have none.
    basic = base64.b64encode(f"{URL_USER}:{password}".encode()).decode()
    assert {r["auth"] for r in llm.requests} == {f"Basic {basic}"}
    search_basic = base64.b64encode(f"{URL_MARK}:".encode()).decode()
    assert {r["auth"] for r in searx.requests} == {f"Basic {search_basic}"}
    assert done["request"]["ai"]["base_url"] == f"{llm.url}/v1"
    assert done["request"]["search"]["base_url"] == searx.url
    texts = await exposed_texts(api, dr_app, task_id, storage_dir)
    assert_absent([URL_MARK, f"{URL_USER}:", basic, search_basic], {**texts, **logs()})


async def test_credentials_in_a_provider_url_stay_out_of_error_texts(
    api: Any, dr_app: Any, storage_dir: Path, llm: FakeLLM, searx: FakeSearXNG, logs: Any
) -> None:
    ai_url = f"http://{URL_USER}:pw-{URL_MARK}@{llm.url.removeprefix('http://')}/v1"
    request = body(llm, searx, model="missing", ai_url=ai_url)
    created = await api("POST", "tasks", body=request)
    task_id = json.loads(created.body)["task_id"]
    failed = await wait_status(api, task_id, "failed")
    assert f"at {llm.url}/v1 (HTTP 404)" in failed["error"]  # the URL is named, redacted
    texts = await exposed_texts(api, dr_app, task_id, storage_dir)
    assert "HTTP 404" in texts["sse-status"]
    assert_absent([URL_MARK, f"{URL_USER}:"], {**texts, **logs()})


async def test_url_credentials_and_an_api_key_together_are_refused(
    api: Any, llm: FakeLLM, searx: FakeSearXNG
) -> None:
    ai_url = f"http://{URL_USER}:pw-{URL_MARK}@{llm.url.removeprefix('http://')}/v1"
    response = await api("POST", "tasks", body=body(llm, searx, ai_url=ai_url, ai_key=AI_KEY))
    assert response.code == 400
    message = json.loads(response.body)["message"]
    assert "ai.base_url" in message and "ai.api_key" in message
    assert URL_MARK not in message and AI_MARK not in message
