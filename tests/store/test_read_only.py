"""A store opened read-only (for `jupyter deepresearch list/show`) reads and never writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from store.store_helpers import new_state, run_task

from dr_testing.stores import async_test
from jupyter_deepresearch.extension.errors import StoreUnavailable
from jupyter_deepresearch.extension.store.files import FileTaskStore


@async_test
async def test_read_only_files_store_reads_and_refuses_writes(tmp_path: Path) -> None:
    writer = FileTaskStore(tmp_path)
    await writer.open()
    state = await run_task(writer)
    await writer.close()

    reader = FileTaskStore(tmp_path, read_only=True)
    await reader.open()
    try:
        assert [row.task_id for row in await reader.summaries()] == [state.task_id]
        loaded = await reader.load(state.task_id)
        assert loaded is not None and loaded.outputs == state.outputs
        with pytest.raises(StoreUnavailable, match="read-only"):
            await reader.create(new_state())
        with pytest.raises(StoreUnavailable, match="read-only"):
            await reader.delete(state.task_id)
        with pytest.raises(StoreUnavailable, match="read-only"):
            await reader.acquire_lease(state.task_id, "me", 30)
    finally:
        await reader.close()
    assert (tmp_path / f"{state.task_id}.json").exists()


@async_test
async def test_read_only_files_store_does_not_create_its_folder(tmp_path: Path) -> None:
    reader = FileTaskStore(tmp_path / "missing", read_only=True)
    with pytest.raises(StoreUnavailable, match="does not exist"):
        await reader.open()
    assert not (tmp_path / "missing").exists()
