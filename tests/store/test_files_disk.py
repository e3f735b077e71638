"""Disk full and read-only storage: `StoreUnavailable`, nothing lost, work resumes after."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_helpers import async_test, collect, new_state, opened, run_task

from jupyter_deepresearch.extension.errors import StoreUnavailable
from jupyter_deepresearch.extension.store import _atomic
from jupyter_deepresearch.extension.store.files import FileTaskStore


class Disk:
    """Switchable fault at the store's single write function."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
        self.code = code
        self.failing = False
        self.partial = False
        real = _atomic.write_all

        def write_all(fd: int, data: bytes) -> None:
            if self.failing:
                if self.partial:  # some bytes reach the file before the error
                    real(fd, data[: len(data) // 2 + 1])
                raise OSError(self.code, os.strerror(self.code))
            real(fd, data)

        monkeypatch.setattr(_atomic, "write_all", write_all)


def check_log(store: FileTaskStore, task_id: str, last: int) -> None:
    """Every line parses, and event ids are 1..last with no duplicate."""
    raw = (store.directory / f"{task_id}.events.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    records = [json.loads(line) for line in raw.splitlines()]
    assert [r["id"] for r in records if r["k"] == "e"] == list(range(1, last + 1))


@pytest.mark.parametrize("partial", [False, True])
@async_test
async def test_disk_full_raises_keeps_events_and_recovers(
    folder: Path, monkeypatch: pytest.MonkeyPatch, partial: bool, caplog: pytest.LogCaptureFixture
) -> None:
    disk = Disk(monkeypatch, errno.ENOSPC)
    async with opened(folder) as store:
        state = await run_task(store, outputs=2)
        await store.flush()
        disk.failing, disk.partial = True, partial
        for i in range(5):
            await store.append(state, "output", {"text": f"while full {i}"})
        with pytest.raises(StoreUnavailable, match=r"Task storage .* is full \(No space left"):
            await store.flush()
        await asyncio.sleep(0.2)  # the background flusher fails, warns once, and lives on
        assert store._flusher is not None and not store._flusher.done()
        warnings = [r for r in caplog.records if "not flushed" in r.getMessage()]
        assert len(warnings) == 1
        # Appending needs no disk: the event is kept and written once the disk is back.
        await store.append(state, "output", {"text": "buffered while full"})
        with pytest.raises(StoreUnavailable, match="is full"):
            await store.save(state)
        with pytest.raises(StoreUnavailable, match="is full"):
            await store.create(new_state())
        with pytest.raises(StoreUnavailable, match="is full"):
            await store.save_checkpoint(state, "k", 1)
        assert (await store.health())["error"].startswith("Task storage")
        disk.failing = False
        await asyncio.sleep(0.2)  # the flusher retries on its own
        assert not any(ev for e in store._entries.values() for ev in e.pending)
        await store.append(state, "output", {"text": "disk is back"})
        await store.save(state, durable=True)
        assert (await store.health())["error"] is None
    check_log(store, state.task_id, state.last_event_id)
    loaded = await FileTaskStore(folder).load(state.task_id)
    assert loaded is not None
    assert loaded.outputs == state.outputs and loaded.checkpoints == state.checkpoints
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@async_test
async def test_failed_snapshot_write_keeps_the_old_file(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = Disk(monkeypatch, errno.ENOSPC)
    async with opened(folder) as store:
        state = await run_task(store)
        await store.save(state)
        snap = folder / f"{state.task_id}.json"
        before = snap.read_bytes()
        await store.flush()
        disk.failing = disk.partial = True
        with pytest.raises(StoreUnavailable):
            await store.save(state)
        assert snap.read_bytes() == before
        disk.failing = False


@async_test
async def test_read_only_error_is_reported(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = Disk(monkeypatch, errno.EROFS)
    async with opened(folder) as store:
        await run_task(store)
        disk.failing = True
        with pytest.raises(StoreUnavailable, match="read-only"):
            await store.flush()
        disk.failing = False


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A small real file system of our own (skips where mounting is not allowed)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = _mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mnt))
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); injected errors cover it")
    try:
        yield mnt
    finally:
        _mount("-o", "remount,rw", str(mnt))
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@async_test
async def test_real_disk_full_then_space_freed(tmpfs: Path) -> None:
    async with opened(tmpfs / "tasks") as store:
        ballast = new_state()
        assert await store.create(ballast)
        await store.append(ballast, "output", {"text": "b" * 700_000})
        await store.flush()
        state = await run_task(store, outputs=1)
        error: StoreUnavailable | None = None
        for i in range(200):
            try:
                await store.append(state, "output", {"text": f"{i} " + "x" * 8000})
                await store.flush()
            except StoreUnavailable as exc:
                error = exc
                break
        assert error is not None and "is full" in error.message
        assert await store.delete(ballast.task_id)
        await store.flush()
        await store.save(state, durable=True)
        check_log(store, state.task_id, state.last_event_id)
    loaded = await FileTaskStore(tmpfs / "tasks").load(state.task_id)
    assert loaded is not None and loaded.outputs == state.outputs


@async_test
async def test_real_read_only_folder(tmpfs: Path) -> None:
    async with opened(tmpfs / "tasks") as store:
        state = await run_task(store, outputs=2)
        await store.save(state)
        assert _mount("-o", "remount,ro", str(tmpfs)).returncode == 0
        await store.append(state, "output", {"text": "while read-only"})
        with pytest.raises(StoreUnavailable, match="read-only"):
            await store.flush()
        with pytest.raises(StoreUnavailable, match="read-only"):
            await store.save(state)
        with pytest.raises(StoreUnavailable, match="read-only"):
            await store.create(new_state())
        other = FileTaskStore(tmpfs / "tasks")  # reading still works
        assert [e.id for e in await collect(other, state.task_id)][-1] == state.last_event_id - 1
        assert len(await other.summaries()) == 1
        assert _mount("-o", "remount,rw", str(tmpfs)).returncode == 0
        await store.flush()
    check_log(store, state.task_id, state.last_event_id)


@async_test
async def test_index_write_failing_after_the_log_write_duplicates_nothing(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _atomic.write_all
    broken = {"on": False}

    def write_all(fd: int, data: bytes) -> None:
        if broken["on"] and not data.startswith(b"{"):  # index entries are binary
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data)

    monkeypatch.setattr(_atomic, "write_all", write_all)
    async with opened(folder) as store:
        state = await run_task(store, outputs=2)
        await store.flush()
        broken["on"] = True
        for i in range(4):
            await store.append(state, "output", {"text": f"x{i}"})
        with pytest.raises(StoreUnavailable):
            await store.flush()  # the log got the lines, the index did not
        broken["on"] = False
        await store.flush()  # retried: the lines already logged are not written twice
        check_log(store, state.task_id, state.last_event_id)
        ids = [e.id for e in await collect(FileTaskStore(folder), state.task_id, 3)]
        assert ids == list(range(4, state.last_event_id + 1))
