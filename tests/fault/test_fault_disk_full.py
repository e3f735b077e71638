"""Disk full mid-task: the task pauses with a reason, the server keeps serving, nothing is lost.

Two ways to fill the disk: `OSError(ENOSPC)` injected at the store's single write function, and
a real 2 MB tmpfs filled up with a ballast file (skipped where mounting is not permitted).
"""

from __future__ import annotations

import errno
import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dr_testing.disk import Disk
from dr_testing.pipelines import UNIT_CALLS
from dr_testing.sse_events import parse_events
from dr_testing.waiting import eventually, wait_status
from jupyter_deepresearch.extension.store._recovery import load_task

UNITS = 6


def body(response: Any) -> Any:
    return json.loads(response.body)


def expected_report(query: str) -> str:
    lines = [f"Unit {n} of {query!r} done." for n in range(UNITS)]
    return "# Report\n\n" + "\n".join(f"- {line} [1]" for line in lines)


async def replay(api: Any, task_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    response = await api("GET", "tasks", task_id, "events", params={"follow": "false"})
    assert response.code == 200, response.body
    return parse_events(response.body)


async def run_through_outage(
    api: Any, dr_app: Any, query: str, fill: Any, drain: Any, *, retry_while_full: bool = True
) -> list[tuple[int, str, dict[str, Any]]]:
    """Start a task, fill the disk after two units, check the outage, drain, resume, check."""
    task_id = body(await api("POST", "tasks", body={"query": query}))["task_id"]

    async def two_units_done() -> bool:
        return UNIT_CALLS[f"{query}|1"] >= 1

    await eventually(two_units_done)
    fill()
    paused = await wait_status(api, task_id, "paused", timeout=20)
    assert "full" in paused["message"], paused
    assert "No space left" in paused["message"], paused

    # The server keeps serving what it has...
    assert (await api("GET", "tasks")).code == 200
    assert (await api("GET", "tasks", task_id)).code == 200
    health = await api("GET", "health")
    assert health.code == 200
    assert "full" in (body(health)["store"]["error"] or "")
    # ...and refuses new work with a 503 that says why, never a 500.
    refused = await api("POST", "tasks", body={"query": f"{query} another"})
    assert refused.code == 503, refused.body
    assert "full" in body(refused)["message"]
    if retry_while_full:
        assert await dr_app.manager.retry_storage_paused() == []  # still full: stays paused
        assert body(await api("GET", "tasks", task_id))["status"] == "paused"

    drain()
    assert await dr_app.manager.retry_storage_paused() == [task_id]
    done = await wait_status(api, task_id, "completed", timeout=30)
    assert done["result"]["report"] == expected_report(query)
    assert done["attempts"] == 2
    # Finished units were not redone; only the one in flight when the disk filled may be.
    assert [UNIT_CALLS[f"{query}|{n}"] for n in range(2)] == [1, 1]
    after = await replay(api, task_id)
    ids = [event_id for event_id, _, _ in after]
    assert ids == list(range(1, len(ids) + 1))
    # Nothing recorded before the outage was lost: both finished units' outputs, once each.
    outputs = [data["text"] for _, kind, data in after if kind == "output"]
    for unit in range(UNITS):
        assert f"Unit {unit} of {query!r} done." in outputs
    assert [outputs.count(f"Unit {n} of {query!r} done.") for n in range(2)] == [1, 1]
    await dr_app.manager.store.flush()
    check_files(dr_app.manager.store.directory, task_id, ids[-1])
    return after


def check_files(directory: Path, task_id: str, last_id: int) -> None:
    snapshot = json.loads((directory / f"{task_id}.json").read_text())
    assert snapshot["progress"]["status"] == "completed"
    assert snapshot["lastEventId"] == last_id
    records = [
        json.loads(line)
        for line in (directory / f"{task_id}.events.jsonl").read_text().splitlines()
    ]
    assert [r["id"] for r in records if r["k"] == "e"] == list(range(1, last_id + 1))


async def test_injected_enospc_pauses_task_and_retry_completes_it(
    api: Any, dr_app: Any, monkeypatch: pytest.MonkeyPatch, dr_log: Any
) -> None:
    disk = Disk(monkeypatch)
    query = f"enospc units={UNITS} delay=0.2"

    def fill() -> None:
        disk.failing = True

    def drain() -> None:
        disk.failing = False

    await run_through_outage(api, dr_app, query, fill, drain)
    assert disk.refused > 0
    assert "storage unavailable" in dr_log.getvalue()


async def test_storage_pause_is_recorded_as_a_status_event(
    api: Any, dr_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = Disk(monkeypatch)
    query = f"enospc-event units={UNITS} delay=0.2"

    def fill() -> None:
        disk.failing = True

    def drain() -> None:
        disk.failing = False

    after = await run_through_outage(api, dr_app, query, fill, drain)
    statuses = [(data["status"], data.get("reason")) for _, kind, data in after if kind == "status"]
    assert ("paused", "storage") in statuses, statuses


async def test_retry_while_snapshots_still_fail_keeps_task_paused_and_resumable(
    api: Any, dr_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = Disk(monkeypatch, new_files_only=True)
    query = f"enospc-snapshots units={UNITS} delay=0.2"
    task_id = body(await api("POST", "tasks", body={"query": query}))["task_id"]
    await wait_status(api, task_id, "running")
    disk.failing = True
    # Pause and resume need snapshot writes: the pause is recorded in memory only.
    await api("POST", "tasks", task_id, "pause")
    paused = await wait_status(api, task_id, "paused")
    assert paused["status"] == "paused"
    dr_app.manager.runner.live[
        task_id
    ].state.paused_by = "storage"  # as a failed snapshot leaves it
    try:
        resumed = await dr_app.manager.retry_storage_paused()
    finally:
        disk.failing = False
    assert resumed == []
    assert body(await api("GET", "tasks", task_id))["status"] == "paused"
    assert await dr_app.manager.retry_storage_paused() == [task_id]
    await wait_status(api, task_id, "completed", timeout=30)


async def test_a_snapshot_left_stale_while_only_log_appends_fit_is_rewritten_later(
    api: Any, dr_app: Any, monkeypatch: pytest.MonkeyPatch, storage_dir: Path
) -> None:
    """The nearly full disk of the tmpfs tests below, made deterministic: appends to the log
    still fit while every snapshot replacement fails, so the task completes from its log alone."""
    disk = Disk(monkeypatch, new_files_only=True)
    query = f"enospc-stale units={UNITS} delay=0.2"
    task_id = body(await api("POST", "tasks", body={"query": query}))["task_id"]

    async def two_units_done() -> bool:
        return UNIT_CALLS[f"{query}|1"] >= 1

    await eventually(two_units_done)
    disk.failing = True
    try:
        done = await wait_status(api, task_id, "completed", timeout=30)
        assert done["result"]["report"] == expected_report(query)
        await dr_app.manager.store.flush()
        assert disk.refused > 0
        stale = json.loads((storage_dir / f"{task_id}.json").read_text())
        assert stale["progress"]["status"] != "completed"  # its replacement was refused
        assert await dr_app.manager.retry_storage_paused() == []  # still full: nothing to do
    finally:
        disk.failing = False
    served = await replay(api, task_id)
    await dr_app.manager.retry_storage_paused()
    await dr_app.manager.store.flush()
    check_files(storage_dir, task_id, served[-1][0])


# ------------------------------------------------------------------ a real, small tmpfs


class TestRealTmpfs:
    """The same outage on a real 2 MB tmpfs as the storage folder, filled with a ballast file."""

    @pytest.fixture
    def storage_dir(self, tmp_path: Path) -> Iterator[Path]:
        mount_point = tmp_path / "tmpfs"
        mount_point.mkdir()
        try:
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                check=True,
                capture_output=True,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError) as error:
            pytest.skip(f"cannot mount a tmpfs here ({error}); the injected ENOSPC test covers it")
        try:
            path = mount_point / "tasks"
            path.mkdir()
            yield path
        finally:
            subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=10)

    @staticmethod
    def filler(ballast: Path) -> Any:
        def fill() -> None:
            with open(ballast, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                except OSError as error:
                    assert error.errno == errno.ENOSPC
            # Also the last few bytes: small appends must fail too.
            with open(ballast, "ab", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0")
                except OSError as error:
                    assert error.errno == errno.ENOSPC

        return fill

    async def test_real_full_tmpfs_pauses_task_and_retry_completes_it(
        self, api: Any, dr_app: Any, storage_dir: Path
    ) -> None:
        # 200 outputs per unit: the log outgrows the slack in its last page, so appends fail.
        query = f"tmpfs units={UNITS} delay=0.2 outputs=200"
        ballast = storage_dir.parent / "ballast"
        await run_through_outage(
            api, dr_app, query, self.filler(ballast), ballast.unlink, retry_while_full=True
        )

    async def run_with_slack_only(self, api: Any, dr_app: Any, storage_dir: Path) -> Any:
        """Fill the disk mid-task while log appends still fit; drain; return what was served."""
        query = f"tmpfs-slack units={UNITS} delay=0.2"
        ballast = storage_dir.parent / "ballast"
        task_id = body(await api("POST", "tasks", body={"query": query}))["task_id"]

        async def two_units_done() -> bool:
            return UNIT_CALLS[f"{query}|1"] >= 1

        await eventually(two_units_done)
        self.filler(ballast)()
        await wait_status(api, task_id, "completed", "paused", timeout=20)
        served_while_full = await replay(api, task_id)
        ballast.unlink()
        await dr_app.manager.retry_storage_paused()
        done = await wait_status(api, task_id, "completed", timeout=30)
        assert done["result"]["report"] == expected_report(query)
        after = await replay(api, task_id)
        assert after[: len(served_while_full)] == served_while_full
        return task_id, after

    async def test_full_tmpfs_with_room_for_log_appends_only(
        self, api: Any, dr_app: Any, storage_dir: Path
    ) -> None:
        """Regression: log appends fit in the last page while every snapshot write fails.

        The `paused` event that followed a failed `completed` save was served but never
        logged, and the completed task ran again: served ids and the durable log disagreed.
        """
        task_id, after = await self.run_with_slack_only(api, dr_app, storage_dir)
        ids = [event_id for event_id, _, _ in after]
        assert ids == list(range(1, len(ids) + 1))
        assert [e for e in after if e[1] == "status"][-1][2]["status"] == "completed"
        await dr_app.manager.store.flush()
        records = [
            json.loads(line)
            for line in (storage_dir / f"{task_id}.events.jsonl").read_text().splitlines()
        ]
        assert [r["id"] for r in records if r["k"] == "e"] == ids  # served == durable
        # What a restarted server would load: the log completes the stale snapshot.
        loaded = load_task(storage_dir, task_id, logging.getLogger("test"))
        assert loaded is not None and loaded[0].status.value == "completed"
        assert loaded[0].last_event_id == ids[-1]

    async def test_stale_snapshot_is_rewritten_once_space_is_back(
        self, api: Any, dr_app: Any, storage_dir: Path
    ) -> None:
        # Whether the task completed while full (a stale snapshot) or paused (its log outgrew
        # the slack) depends on where its log ended when the disk filled: the snapshot is
        # right either way. The stale case alone is made certain above with injected ENOSPC.
        task_id, after = await self.run_with_slack_only(api, dr_app, storage_dir)
        await dr_app.manager.retry_storage_paused()
        await dr_app.manager.store.flush()
        snapshot = json.loads((storage_dir / f"{task_id}.json").read_text())
        assert snapshot["progress"]["status"] == "completed"
        assert snapshot["lastEventId"] == after[-1][0]
