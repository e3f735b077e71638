"""Auth on every route, XSRF for cookie sessions, per-user isolation, secrets never leak."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from dr_testing.waiting import wait_status
from jupyter_deepresearch.extension.handlers import route_table

SECRET = "sk-test-DO-NOT-LEAK-8d1f0c2b"
SOME_ID = "0123456789abcdef0123456789abcdef"


def concrete_routes() -> list[tuple[str, str]]:
    """(method, path below api/deepresearch/) for every route and every method it serves."""
    calls = []
    for pattern, handler in route_table():
        path = pattern.removeprefix("/api/deepresearch/")
        path = path.replace("(?P<task_id>[^/]+)", SOME_ID)
        path = path.replace("(?P<action>pause|resume|cancel)", "pause")
        for method in ("GET", "POST", "DELETE"):
            if method.lower() in vars(handler):
                calls.append((method, path))
    return calls


@pytest.mark.parametrize(("method", "path"), concrete_routes())
async def test_every_route_is_403_without_credentials(
    jp_fetch: Any, dr_app: Any, method: str, path: str
) -> None:
    body = json.dumps({"query": "x"}) if method == "POST" else None
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(
            "api",
            "deepresearch",
            *path.split("/"),
            method=method,
            body=body,
            headers={"Authorization": ""},
        )
    assert caught.value.code == 403


async def test_cookie_session_needs_xsrf_for_post(
    jp_fetch: Any, dr_app: Any, jp_serverapp: Any
) -> None:
    token = jp_serverapp.identity_provider.token
    login = await jp_fetch("login", method="GET", headers={"Authorization": ""})
    xsrf = _cookie(login, "_xsrf")
    logged_in = await jp_fetch(
        "login",
        method="POST",
        body=f"password={token}&_xsrf={xsrf}",
        headers={"Cookie": f"_xsrf={xsrf}", "Authorization": ""},
        follow_redirects=False,
        raise_error=False,
    )
    session = "; ".join(
        c.split(";")[0] for c in logged_in.headers.get_list("Set-Cookie") if "username" in c
    )
    assert session, "login did not set a session cookie"
    cookies = f"{session}; _xsrf={xsrf}"
    body = json.dumps({"query": "cookie units=1"})
    without = await jp_fetch(
        "api",
        "deepresearch",
        "tasks",
        method="POST",
        body=body,
        headers={"Cookie": cookies, "Authorization": ""},
        raise_error=False,
    )
    assert without.code == 403
    with_xsrf = await jp_fetch(
        "api",
        "deepresearch",
        "tasks",
        method="POST",
        body=body,
        headers={"Cookie": cookies, "X-XSRFToken": xsrf, "Authorization": ""},
        raise_error=False,
    )
    assert with_xsrf.code == 201
    listed = await jp_fetch(
        "api", "deepresearch", "tasks", headers={"Cookie": cookies, "Authorization": ""}
    )
    assert listed.code == 200


def _cookie(response: Any, name: str) -> str:
    for header in response.headers.get_list("Set-Cookie"):
        match = re.match(rf"{name}=([^;]+)", header)
        if match:
            return match.group(1)
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('Set-Cookie')}")


@pytest.fixture
def multi_user_config(jp_server_config: Any) -> Any:
    jp_server_config["ServerApp"]["identity_provider_class"] = (
        "dr_testing.identity.TokenPerUserIdentityProvider"
    )
    return jp_server_config


async def test_user_scope_isolates_tasks(
    multi_user_config: Any, jp_fetch: Any, dr_app: Any
) -> None:
    async def as_user(user: str, method: str, *parts: str, body: Any = None) -> Any:
        return await jp_fetch(
            "api",
            "deepresearch",
            *parts,
            method=method,
            body=None if body is None else json.dumps(body),
            headers={"Authorization": f"token token-{user}"},
            raise_error=False,
        )

    alice = await as_user("alice", "POST", "tasks", body={"query": "mine units=1"})
    assert alice.code == 201
    alice_id = json.loads(alice.body)["task_id"]
    assert json.loads(alice.body)["owner"] == "alice"
    bob = await as_user("bob", "POST", "tasks", body={"query": "mine units=1"})
    assert bob.code == 201
    assert json.loads(bob.body)["task_id"] != alice_id
    for method, parts in [
        ("GET", ("tasks", alice_id)),
        ("GET", ("tasks", alice_id, "events")),
        ("POST", ("tasks", alice_id, "pause")),
        ("POST", ("tasks", alice_id, "cancel")),
        ("DELETE", ("tasks", alice_id)),
    ]:
        response = await as_user("bob", method, *parts, body={} if method == "POST" else None)
        assert response.code == 404, (method, parts)
    listed = json.loads((await as_user("bob", "GET", "tasks")).body)["tasks"]
    assert [t["owner"] for t in listed] == ["bob"]
    assert (await as_user("alice", "GET", "tasks", alice_id)).code == 200


@pytest.mark.parametrize(
    "dr_config", [{"pipeline": "dr_testing.pipelines:stepped", "fingerprint_scope": "shared"}]
)
async def test_shared_scope_shares_identical_requests(
    multi_user_config: Any, jp_fetch: Any, dr_app: Any
) -> None:
    ids = set()
    for user in ("alice", "bob"):
        response = await jp_fetch(
            "api",
            "deepresearch",
            "tasks",
            method="POST",
            body=json.dumps({"query": "ours units=1"}),
            headers={"Authorization": f"token token-{user}"},
        )
        ids.add(json.loads(response.body)["task_id"])
    assert len(ids) == 1


async def test_api_key_never_reaches_disk_logs_or_responses(
    api: Any,
    dr_app: Any,
    storage_dir: Path,
    caplog: pytest.LogCaptureFixture,
    jp_logging_stream: Any,
    dr_log: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    request = {"query": "secret units=2", "ai": {"provider": "extractive", "api_key": SECRET}}
    created = await api("POST", "tasks", body=request)
    assert created.code == 201
    task_id = json.loads(created.body)["task_id"]
    done = await wait_status(api, task_id, "completed")
    responses = [
        created.body,
        (await api("POST", "tasks", body=request)).body,
        (await api("GET", "tasks", task_id)).body,
        (await api("GET", "tasks")).body,
        (await api("GET", "tasks", task_id, "events")).body,
    ]
    assert "api_key" not in done["request"]["ai"]
    for body in responses:
        assert SECRET.encode() not in body
    await dr_app.manager.store.flush()
    for path in storage_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in caplog.text
    assert SECRET not in jp_logging_stream.getvalue()
    assert "Created task" in dr_log.getvalue()
    assert SECRET not in dr_log.getvalue()
