"""Expiry, health, secrets, cross-process creation, atomic snapshots, on-disk record formats."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from pydantic import SecretStr
from store_helpers import (
    async_test,
    collect,
    finish,
    new_state,
    opened,
    run_task,
    validate_snapshot,
)

from jupyter_deepresearch.extension.models import (
    AISettings,
    ResearchRequest,
    SearchSettings,
    Status,
    public_request,
)
from jupyter_deepresearch.extension.store._journal import LOG_RECORD_SCHEMA
from jupyter_deepresearch.extension.store.base import TaskState, utcnow
from jupyter_deepresearch.extension.store.files import FileTaskStore


async def aged(store: FileTaskStore, status: str, days: float) -> TaskState:
    """A task whose last status change (`finished_at` when terminal) was `days` ago."""
    state = await run_task(store, outputs=1)
    if status != "running":
        await store.append(state, "status", {"status": status})
    if state.finished_at is not None:
        state.finished_at = utcnow() - timedelta(days=days)
    state.updated_at = utcnow() - timedelta(days=days)
    await store.save(state)
    return state


@async_test
async def test_expire_deletes_only_old_terminal_tasks(folder: Path) -> None:
    async with opened(folder) as store:
        old = [await aged(store, s, 10) for s in ("completed", "failed", "cancelled")]
        young = await aged(store, "completed", 1)
        kept = [await aged(store, s, 10) for s in ("running", "paused", "queued")]
        resumed = await aged(store, "completed", 10)
    async with opened(folder) as other:  # another server resumed this one: its log says so
        state = await other.load(resumed.task_id)
        assert state is not None
        await other.append(state, "status", {"status": "running"})
        await other.flush()
    async with opened(folder) as store:
        removed = await store.expire(utcnow() - timedelta(days=7))
        assert sorted(removed) == sorted(s.task_id for s in old)
        left = {row.task_id for row in await store.summaries()}
        assert left == {young.task_id, resumed.task_id, *(s.task_id for s in kept)}
        assert not [p for p in folder.iterdir() if p.name.split(".")[0] in removed]
        assert await store.expire(utcnow() - timedelta(days=7)) == []


@async_test
async def test_health_reports_kind_and_counts_and_never_the_folder(folder: Path) -> None:
    async with opened(folder) as store:
        done = await run_task(store)
        await finish(store, done)
        await run_task(store)
        health = await store.health()
        assert store.location == str(folder)  # for the log, not for any user who asks
    assert health["kind"] == "files" and str(folder) not in str(health)
    assert health["tasks"] == 2
    assert health["by_status"]["completed"] == 1 and health["by_status"]["running"] == 1
    assert health["error"] is None


@async_test
async def test_secrets_never_reach_disk(folder: Path) -> None:
    secret = "sk-test-secret-0123456789"
    request = ResearchRequest(
        query="secret test",
        ai=AISettings(provider="openai-compatible", api_key=SecretStr(secret)),
        search=SearchSettings(provider="searxng", api_key=SecretStr(secret + "-search")),
    )
    async with opened(folder) as store:
        state = new_state()
        state.request = public_request(request)
        assert await store.create(state)
        await store.append(state, "output", {"text": "text"})
        await store.save_checkpoint(state, "plan", {"queries": ["q"]})
        await finish(store, state)
        await store.reset_run(state)
        await store.flush()
    for path in folder.iterdir():
        assert secret.encode() not in path.read_bytes(), path.name


@async_test
async def test_files_follow_their_schemas(folder: Path) -> None:
    async with opened(folder) as store:
        states = [await run_task(store, outputs=2) for _ in range(2)]
        await finish(store, states[0])
        await store.append(states[1], "status", {"status": "failed", "error": "boom"})
        await store.save(states[1])
        paused = await run_task(store, outputs=1)
        await store.append(paused, "status", {"status": "paused", "reason": "credentials"})
        await store.save(paused)
    for path in folder.glob("*.json"):
        validate_snapshot(json.loads(path.read_bytes()))
    for path in folder.glob("*.events.jsonl"):
        for line in path.read_bytes().splitlines():
            jsonschema.validate(json.loads(line), LOG_RECORD_SCHEMA)
    loaded = await FileTaskStore(folder).load(paused.task_id)
    assert loaded is not None and loaded.paused_by == "credentials"


@async_test
async def test_readers_never_see_half_a_snapshot(folder: Path) -> None:
    async with opened(folder) as store:
        state = await run_task(store, outputs=1)
        snap = folder / f"{state.task_id}.json"
        stop = threading.Event()
        seen: list[int] = []
        errors: list[Exception] = []

        def read() -> None:
            while not stop.is_set():
                try:
                    seen.append(len(json.loads(snap.read_bytes())["outputs"]))
                except Exception as exc:
                    errors.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for i in range(100):
                await store.append(state, "output", {"text": "y" * 10_000 + str(i)})
                await store.save(state)
        finally:
            stop.set()
            await asyncio.to_thread(reader.join)
    assert errors == []
    assert len(seen) > 10 and seen == sorted(seen)
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


CREATOR = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from jupyter_deepresearch.extension.store.base import TaskState
    from jupyter_deepresearch.extension.store.files import FileTaskStore

    async def main():
        folder, go = sys.argv[1], sys.argv[2]
        store = FileTaskStore(folder)
        await store.open()
        while not os.path.exists(go):
            time.sleep(0.001)
        created = await store.create(TaskState(task_id="ab" * 16, request={"pid": os.getpid()}))
        print(created)
        await store.close()

    asyncio.run(main())
    """
)


def test_two_servers_never_both_create_one_task(tmp_path: Path) -> None:
    folder, go = tmp_path / "tasks", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATOR, str(folder), str(go)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    go.touch()
    results = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(results) == ["False"] * 5 + ["True"]
    snapshot = json.loads((folder / f"{'ab' * 16}.json").read_bytes())
    header = json.loads((folder / f"{'ab' * 16}.events.jsonl").read_bytes().splitlines()[0])
    assert snapshot["request"] == header["request"]  # both files from the one winner


@async_test
async def test_ids_are_checked_before_any_path_is_built(folder: Path) -> None:
    async with opened(folder) as store:
        for bad in ("../x", "a/b", "", ".hidden", "x" * 200):
            with pytest.raises(ValueError):
                await store.load(bad)
        assert await collect(store, "f" * 32) == []
        assert await store.load("f" * 32) is None
        assert not await store.delete("f" * 32)


@async_test
async def test_close_flushes_everything(folder: Path) -> None:
    async with opened(folder, flush_interval=3600) as store:
        state = await run_task(store, outputs=3)
    loaded = await FileTaskStore(folder).load(state.task_id)
    assert loaded is not None and loaded.last_event_id == state.last_event_id
    assert loaded.status is Status.running
