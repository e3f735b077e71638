"""Configuration sources, health, activity for idle cullers, logs, expiry, the OpenAPI document."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dr_testing.waiting import wait_status
from jupyter_deepresearch.extension.handlers import route_table
from jupyter_deepresearch.extension.openapi import openapi_document
from jupyter_deepresearch.extension.store.base import utcnow


def body(response: Any) -> Any:
    return json.loads(response.body)


@pytest.fixture
def env_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "from-env"
    monkeypatch.setenv("TASK_STORAGE_DIR", str(path))
    monkeypatch.setenv("MAX_TASK_AGE_HOURS", "2.5")
    return path


@pytest.mark.parametrize(
    "dr_config", [{"pipeline": "dr_testing.pipelines:stepped", "storage_dir": ""}]
)
async def test_environment_variables_are_honoured(
    env_storage: Path, api: Any, dr_app: Any, dr_config: Any
) -> None:
    assert dr_app.max_task_age_hours == 2.5
    task_id = body(await api("POST", "tasks", body={"query": "env units=1"}))["task_id"]
    await wait_status(api, task_id, "completed")
    assert (env_storage / f"{task_id}.json").is_file()


@pytest.fixture
def jp_argv() -> list[str]:
    return ["--DeepResearchApp.lease_seconds=5", "--DeepResearchApp.max_concurrent_tasks=3"]


async def test_command_line_and_config_file_settings(dr_app: Any) -> None:
    assert dr_app.lease_seconds == 5
    assert dr_app.max_concurrent_tasks == 3
    assert dr_app.manager.max_concurrent_tasks == 3


@pytest.fixture
def jp_server_config(jp_server_config: Any, jp_config_dir: Path) -> Any:
    # A config file in the user's Jupyter config folder, as an administrator would write it.
    (jp_config_dir / "jupyter_server_config.json").write_text(
        json.dumps({"DeepResearchApp": {"max_body_bytes": 4321, "fingerprint_scope": "shared"}})
    )
    return jp_server_config


async def test_config_file_is_read(dr_app: Any) -> None:
    assert dr_app.max_body_bytes == 4321
    assert dr_app.fingerprint_scope == "shared"


async def test_health_reports_store_and_counts(api: Any) -> None:
    task_id = body(await api("POST", "tasks", body={"query": "health units=1"}))["task_id"]
    await wait_status(api, task_id, "completed")
    health = body(await api("GET", "health"))
    assert health["store"]["kind"] == "files"
    assert health["tasks"]["completed"] == 1
    assert set(health["tasks"]) == {
        "queued",
        "running",
        "paused",
        "completed",
        "failed",
        "cancelled",
    }


async def test_running_task_reports_activity(api: Any, jp_serverapp: Any) -> None:
    before = utcnow()
    task_id = body(await api("POST", "tasks", body={"query": "activity units=2"}))["task_id"]
    await wait_status(api, task_id, "completed")
    stamp = jp_serverapp.web_app.settings["last_activity_times"]["deepresearch"]
    assert stamp >= before
    assert jp_serverapp.web_app.last_activity() >= stamp


async def test_logs_name_task_ids(
    api: Any,
    caplog: pytest.LogCaptureFixture,
    jp_logging_stream: Any,
    dr_log: Any,
) -> None:
    caplog.set_level(logging.INFO)
    ok = body(await api("POST", "tasks", body={"query": "logged units=1"}))["task_id"]
    await wait_status(api, ok, "completed")
    await api("POST", "tasks", body={"query": "logged units=1"})
    bad = body(await api("POST", "tasks", body={"query": "logged-fail units=1 fail-at=0"}))[
        "task_id"
    ]
    await wait_status(api, bad, "failed")
    await api("POST", "tasks", body={"query": "logged-fail units=1 fail-at=0"})
    text = caplog.text + jp_logging_stream.getvalue() + dr_log.getvalue()
    for pattern in (
        f"Created task {ok}",
        f"Completed task {ok}",
        f"Returned completed task {ok}",
        f"Task {bad} failed",
        f"Resuming task {bad}",
    ):
        assert re.search(pattern, text), pattern


@pytest.mark.parametrize(
    "dr_config", [{"pipeline": "dr_testing.pipelines:stepped", "max_task_age_hours": 1.0}]
)
async def test_expiry_deletes_only_old_finished_tasks(
    api: Any, dr_app: Any, dr_config: Any
) -> None:
    finished = body(await api("POST", "tasks", body={"query": "old units=1"}))["task_id"]
    await wait_status(api, finished, "completed")
    paused = body(await api("POST", "tasks", body={"query": "kept needs-key units=1"}))["task_id"]
    await wait_status(api, paused, "paused")
    assert await dr_app.manager.expire() == []
    state = await dr_app.manager.get(finished)
    state.finished_at = utcnow() - timedelta(hours=2)
    await dr_app.manager.store.save(state, durable=True)
    removed = await dr_app.manager.expire()
    assert removed == [finished]
    assert (await api("GET", "tasks", finished)).code == 404
    assert (await api("GET", "tasks", paused)).code == 200


async def test_openapi_document_matches_the_handlers(api: Any) -> None:
    served = body(await api("GET", "openapi.json"))
    assert served == json.loads(json.dumps(openapi_document()))
    documented = {
        (path, method.upper()) for path, item in served["paths"].items() for method in item
    }
    routed = set()
    for pattern, handler in route_table():
        path = pattern.replace("(?P<task_id>[^/]+)", "{task_id}")
        actions = ["pause", "resume", "cancel"] if "(?P<action>" in path else [None]
        for action in actions:
            concrete = re.sub(r"\(\?P<action>[^)]*\)", action or "", path)
            for method in ("GET", "POST", "DELETE"):
                if method.lower() in vars(handler):
                    routed.add((concrete, method))
    assert documented == routed
    assert served["components"]["schemas"]["ResearchRequest"]["additionalProperties"] is False


@pytest.mark.parametrize(
    "dr_config",
    [
        {
            "pipeline": "dr_testing.pipelines:stepped",
            "store_class": "dr_testing.stores.RenamedFileStore",
        }
    ],
)
async def test_store_class_plugs_in_another_backend(api: Any, dr_app: Any, dr_config: Any) -> None:
    health = body(await api("GET", "health"))
    assert health["store"]["kind"] == "renamed-files"
    task_id = body(await api("POST", "tasks", body={"query": "plugged units=1"}))["task_id"]
    assert (await wait_status(api, task_id, "completed"))["status"] == "completed"


def test_store_class_must_be_a_task_store() -> None:
    from traitlets import TraitError

    from jupyter_deepresearch.extension.app import DeepResearchApp

    with pytest.raises(TraitError):
        DeepResearchApp(store_class="pathlib.Path")
