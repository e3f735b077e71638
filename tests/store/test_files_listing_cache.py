"""Listing tasks again reads only the snapshots that changed since the last listing."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import async_test, new_state, opened

from jupyter_deepresearch.extension.store import _folder as folder
from jupyter_deepresearch.extension.store.files import FileTaskStore


@async_test
async def test_second_listing_reads_only_changed_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "tasks"
    async with opened(directory) as writer:
        states = [new_state() for _ in range(3)]
        for state in states:
            assert await writer.create(state)
            await writer.save(state, durable=True)
    reader = FileTaskStore(directory)
    reads: list[str] = []
    real = folder.read_summary

    def counting(head: bytes, task_id: str) -> object:
        reads.append(task_id)
        return real(head, task_id)

    monkeypatch.setattr(folder, "read_summary", counting)
    assert len(await reader.summaries()) == 3
    assert sorted(reads) == sorted(s.task_id for s in states)
    reads.clear()
    assert len(await reader.summaries()) == 3
    assert reads == []  # nothing changed: no snapshot opened

    async with opened(directory) as writer:
        changed = await writer.load(states[0].task_id)
        assert changed is not None
        await writer.append(changed, "output", {"text": "more"})
        await writer.save(changed, durable=True)
        assert await writer.delete(states[1].task_id)
    rows = {row.task_id: row for row in await reader.summaries()}
    assert reads == [states[0].task_id]
    assert set(rows) == {states[0].task_id, states[2].task_id}
