"""A log that grows between the writer's check and its write is checked again, not failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_helpers import async_test, new_state, opened

from jupyter_deepresearch.extension.store import _folder as folder
from jupyter_deepresearch.extension.store import _journal as journal
from jupyter_deepresearch.extension.store.base import Event


@async_test
async def test_log_growing_during_a_write_is_rechecked(
    folder_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with opened(folder_path) as store:
        state = new_state()
        assert await store.create(state)
        await store.append(state, "output", {"text": "first"})
        await store.flush()
    paths = folder.task_paths(folder_path, state.task_id)
    real_repair = journal.repair
    grown: list[bool] = []

    def repair_then_grow(log_path: Path, idx_path: Path) -> journal.Tail:
        tail = real_repair(log_path, idx_path)
        if not grown:  # another writer appends right after our check
            with open(log_path, "ab") as f:
                f.write(journal.event_line(Event(2, "output", {"text": "other"})))
            grown.append(True)
        return tail

    monkeypatch.setattr(journal, "repair", repair_then_grow)
    line = journal.event_line(Event(3, "output", {"text": "ours"}))
    tail = folder.write_lines(paths, None, [], b"", [(3, line)])
    assert tail is not None and tail.last_id == 3
    texts = [
        json.loads(raw)["d"]["text"]
        for raw in paths.log.read_text().splitlines()
        if json.loads(raw)["k"] == "e"
    ]
    assert texts == ["first", "other", "ours"]


@pytest.fixture
def folder_path(tmp_path: Path) -> Path:
    return tmp_path / "tasks"
