"""Odd files where the store keeps its caches (`.cache/`): passed over, never hung on.

On a shared store anyone who can write the folder can leave something there: a FIFO (an open
for reading would wait for a writer forever), a link to /dev/zero (a read would fill memory), a
folder. The server must start, list and keep its caches as if they were missing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from store_helpers import async_test, finish, new_state, opened

from jupyter_deepresearch.extension.store import _listing
from jupyter_deepresearch.extension.store._atomic import read_cache_file
from jupyter_deepresearch.extension.store._folder import CACHE_FOLDER

HINT = "task-summaries-0"


def fifo(path: Path) -> None:
    os.mkfifo(path)


def link_to_dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def folder(path: Path) -> None:
    path.mkdir()


def link_to_a_real_file(path: Path) -> None:
    real = path.with_name("elsewhere")
    real.write_bytes(b'{"version": 1, "rows": []}')
    path.symlink_to(real)


@pytest.mark.parametrize("make", [fifo, link_to_dev_zero, folder, link_to_a_real_file])
@async_test
async def test_odd_cache_files_are_passed_over(
    tmp_path: Path, make: Callable[[Path], None]
) -> None:
    tasks = tmp_path / "tasks"
    async with opened(tasks) as store:
        state = new_state()
        assert await store.create(state)
        await finish(store, state)
    cache = tasks / CACHE_FOLDER
    cache.mkdir(exist_ok=True)
    for name in (_listing.NAME.split("/")[-1], HINT):
        (cache / name).unlink(missing_ok=True)
        make(cache / name)

    async with opened(tasks) as store:
        rows = await asyncio.wait_for(store.listing(), 30)
        assert [row.task_id for row in rows] == [state.task_id]
        assert await asyncio.wait_for(store.read_hint(HINT), 30) is None


def test_a_cache_file_over_the_cap_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 101)
    assert read_cache_file(path, 100) is None
    assert read_cache_file(path, 101) == b"x" * 101
    assert read_cache_file(tmp_path / "missing", 100) is None
