"""`list` and `show`: through a server, and straight from a store without writing to it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from dr_testing.cli import run
from dr_testing.servers import ServerProcess
from jupyter_deepresearch.extension.store.files import FileTaskStore


def completed(query: str, env: dict[str, str], at: list[str]) -> str:
    done = run(["submit", query, "--wait", "--json-output", *at], env)
    assert done.returncode == 0, done.stderr
    task_id: str = json.loads(done.stdout)["task_id"]
    return task_id


def test_list_and_show_through_the_server(env: dict[str, str], at: list[str]) -> None:
    older = completed("units=1 listed first", env, at)
    newer = completed("units=2 listed second", env, at)

    rows = json.loads(run(["list", "--json", *at], env).stdout)
    ids = [row["task_id"] for row in rows]
    assert ids.index(newer) < ids.index(older)  # newest first
    assert all("result" not in row for row in rows)

    one = json.loads(run(["list", "--json", "--status=completed", "--limit=1", *at], env).stdout)
    assert len(one) == 1 and one[0]["status"] == "completed"

    found = json.loads(run(["list", "--json", "--query=LISTED", *at], env).stdout)
    assert [row["task_id"] for row in found] == [newer, older]
    later = run(["list", "--json", "--query=listed", "--offset=1", *at], env).stdout
    assert [row["task_id"] for row in json.loads(later)] == [older]

    text = run(["list", *at], env).stdout
    line = next(line for line in text.splitlines() if line.startswith(newer))
    assert "completed" in line and "100%" in line and "listed second" in line

    shown = run(["show", newer, *at], env)
    assert shown.returncode == 0, shown.stderr
    assert f"`{newer}`: **completed**, 100%" in shown.stdout
    assert "# Report" in shown.stdout and "Unit 1 of 'units=2 listed second' done." in shown.stdout


def folder_state(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and mtime (ns), subfolders' too, and each folder's own mtime (under
    its relative name, the top one as ``.``)."""
    state = {".": (b"", folder.stat().st_mtime_ns)}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        data = b"" if path.is_dir() else path.read_bytes()
        state[name] = (data, path.stat().st_mtime_ns)
    return state


def test_reading_a_files_store_leaves_it_unchanged(
    server: ServerProcess, env: dict[str, str], at: list[str], tmp_path: Path
) -> None:
    healthy = completed("units=2 read only healthy", env, at)
    damaged = completed("units=3 read only damaged", env, at)
    folder = tmp_path / "copy"
    shutil.copytree(server.storage_dir, folder)  # copy2: the files keep their mtimes
    # Everything a normal open and read would write: a damaged snapshot (moved aside and
    # rebuilt from its log), no listing cache (saved), a crash's stale temp file (removed).
    (folder / f"{damaged}.json").write_bytes(b"{not json")
    shutil.rmtree(folder / ".cache", ignore_errors=True)
    stale = folder / ".x.json.1.deadbeef.tmp"
    stale.write_bytes(b"half")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    twin = tmp_path / "twin"
    shutil.copytree(folder, twin)
    before = folder_state(folder)

    listed = run(["list", "--json", f"--storage-dir={folder}"], env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["task_id"]: row for row in json.loads(listed.stdout)}
    assert rows[healthy]["status"] == "completed"
    found = run(["list", "--json", "--query=HEALTHY", f"--storage-dir={folder}"], env)
    assert [row["task_id"] for row in json.loads(found.stdout)] == [healthy]
    shown = run(["show", damaged, f"--storage-dir={folder}"], env)
    assert shown.returncode == 0, shown.stderr
    assert "**completed**" in shown.stdout  # rebuilt from its log, in memory only
    assert "Unit 2 of 'units=3 read only damaged' done." in shown.stdout
    as_json = run(["show", healthy, "--json", f"--storage-dir={folder}"], env)
    info = json.loads(as_json.stdout)  # the shape `GET tasks/{id}` answers with
    assert info["task_id"] == healthy and info["status"] == "completed"
    assert "Unit 1 of 'units=2 read only healthy' done." in info["result"]["report"]

    assert folder_state(folder) == before

    # The same reads by an ordinary store do write: the check above can fail.
    async def ordinary() -> None:
        store = FileTaskStore(twin)
        await store.open()
        await store.summaries()
        await store.load(damaged)
        await store.close()

    asyncio.run(ordinary())
    assert folder_state(twin).keys() != before.keys()


def test_reading_a_missing_folder_creates_nothing(env: dict[str, str], tmp_path: Path) -> None:
    done = run(["list", f"--storage-dir={tmp_path / 'nowhere'}"], env)
    assert done.returncode == 3
    assert "does not exist" in done.stderr
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.usefixtures("redis_url")
def test_reading_a_redis_store_leaves_it_unchanged(
    redis_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    from store.store_helpers import new_state

    from jupyter_deepresearch.extension.store.redis import RedisTaskStore

    url = f"{redis_url}?prefix=cli-{os.getpid()}:"
    state = new_state()

    async def write() -> None:
        store = RedisTaskStore(url)
        await store.open()
        await store.create(state)
        await store.append(state, "status", {"status": "running"})
        await store.append(state, "output", {"text": "Half a report."})
        await store.save(state, durable=True)
        # An id whose task is gone (its TTL ran out): an ordinary listing prunes it.
        await store.client.zadd(store.keys.tasks, {"f" * 32: 1})
        await store.close()

    async def dump() -> dict[bytes, bytes]:
        store = RedisTaskStore(url)
        keys = await store.client.keys(f"cli-{os.getpid()}:*")
        values = {key: await store.client.dump(key) for key in keys}
        await store.close()
        return values

    asyncio.run(write())
    before = asyncio.run(dump())

    listed = run(["list", "--json", f"--redis-url={url}"], env)
    assert listed.returncode == 0, listed.stderr
    assert [row["task_id"] for row in json.loads(listed.stdout)] == [state.task_id]
    shown = run(["show", state.task_id, f"--redis-url={url}"], env)
    assert shown.returncode == 0, shown.stderr
    assert "**running**" in shown.stdout and "Half a report." in shown.stdout

    assert asyncio.run(dump()) == before

    async def ordinary() -> None:
        store = RedisTaskStore(url)
        await store.summaries()
        await store.close()

    asyncio.run(ordinary())
    assert asyncio.run(dump()) != before


def test_show_of_a_running_task_has_the_report_so_far(env: dict[str, str], at: list[str]) -> None:
    task_id = run(["submit", "units=400 delay=0.1 show me so far", *at], env).stdout.strip()
    try:
        deadline = time.monotonic() + 60
        shown = run(["show", task_id, *at], env)
        while "Unit 1 of" not in shown.stdout and time.monotonic() < deadline:
            shown = run(["show", task_id, *at], env)
        assert "**running**" in shown.stdout
        assert "Unit 0 of 'units=400 delay=0.1 show me so far' done." in shown.stdout
    finally:
        run(["cancel", task_id, *at], env)
