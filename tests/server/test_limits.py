"""Per-user limits: a flood of submissions gets 429s that name the limit and its setting."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dr_testing.waiting import wait_status

SLOW = "units=40 delay=0.5"


@pytest.fixture
def as_user(jp_server_config: Any, jp_fetch: Any, dr_app: Any) -> Any:
    async def call(user: str, method: str, *parts: str, body: Any = None) -> Any:
        return await jp_fetch(
            "api",
            "deepresearch",
            *parts,
            method=method,
            body=("" if method == "POST" else None) if body is None else json.dumps(body),
            headers={"Authorization": f"token token-{user}"},
            raise_error=False,
        )

    return call


@pytest.fixture
def jp_server_config(jp_server_config: Any) -> Any:
    jp_server_config["ServerApp"]["identity_provider_class"] = (
        "dr_testing.identity.TokenPerUserIdentityProvider"
    )
    return jp_server_config


def message(response: Any) -> str:
    return str(json.loads(response.body)["message"])


@pytest.mark.parametrize(
    "dr_config",
    [{"pipeline": "dr_testing.pipelines:stepped", "max_unfinished_tasks_per_user": 2}],
)
async def test_unfinished_tasks_per_user(as_user: Any, dr_config: Any) -> None:
    first = await as_user("alice", "POST", "tasks", body={"query": f"one {SLOW}"})
    await as_user("alice", "POST", "tasks", body={"query": f"two {SLOW}"})
    refused = await as_user("alice", "POST", "tasks", body={"query": f"three {SLOW}"})
    assert refused.code == 429
    assert "max_unfinished_tasks_per_user" in message(refused) and "2" in message(refused)
    assert "User 'alice' already has 2 unfinished tasks (the limit is 2)" in message(refused)
    listed = json.loads((await as_user("alice", "GET", "tasks")).body)["tasks"]
    assert len(listed) == 2  # nothing was stored for the refused request

    # Attaching to a task one already has is no new task; other users have their own count.
    assert (await as_user("alice", "POST", "tasks", body={"query": f"one {SLOW}"})).code == 200
    assert (await as_user("bob", "POST", "tasks", body={"query": f"three {SLOW}"})).code == 201

    task_id = json.loads(first.body)["task_id"]
    assert (await as_user("alice", "POST", "tasks", task_id, "cancel")).code == 200
    assert (await as_user("alice", "POST", "tasks", body={"query": f"three {SLOW}"})).code == 201
    # Resuming the cancelled one would make three unfinished again.
    resumed = await as_user("alice", "POST", "tasks", task_id, "resume")
    assert resumed.code == 429, resumed.body


@pytest.mark.parametrize(
    "dr_config",
    [{"pipeline": "dr_testing.pipelines:stepped", "max_stored_tasks_per_user": 2}],
)
async def test_stored_tasks_per_user(as_user: Any, dr_config: Any) -> None:
    ids = []
    for query in ("a units=1", "b units=1"):
        created = await as_user("alice", "POST", "tasks", body={"query": query})
        ids.append(json.loads(created.body)["task_id"])
    refused = await as_user("alice", "POST", "tasks", body={"query": "c units=1"})
    assert refused.code == 429
    assert "max_stored_tasks_per_user" in message(refused)
    for task_id in ids:
        await wait_status(lambda *a, **k: as_user("alice", *a, **k), task_id, "completed")
    assert (await as_user("alice", "DELETE", "tasks", ids[0])).code == 204
    assert (await as_user("alice", "POST", "tasks", body={"query": "c units=1"})).code == 201


@pytest.mark.parametrize(
    "dr_config",
    [
        {
            "pipeline": "dr_testing.pipelines:stepped",
            "max_concurrent_tasks": 1,
            "max_queued_tasks": 1,
        }
    ],
)
async def test_queue_length_of_the_server(as_user: Any, dr_config: Any) -> None:
    assert (await as_user("alice", "POST", "tasks", body={"query": f"run {SLOW}"})).code == 201
    assert (await as_user("alice", "POST", "tasks", body={"query": f"wait {SLOW}"})).code == 201
    refused = await as_user("bob", "POST", "tasks", body={"query": f"more {SLOW}"})
    assert refused.code == 429
    assert "max_queued_tasks" in message(refused)


def test_limits_must_not_be_negative() -> None:
    from traitlets import TraitError

    from jupyter_deepresearch.extension.app import DeepResearchApp

    with pytest.raises(TraitError, match="max_queued_tasks"):
        DeepResearchApp(max_queued_tasks=-1)
