"""Lease files: a crashed server on this host frees its leases at once; others wait for expiry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from store_helpers import async_test, new_state, opened

from jupyter_deepresearch.extension.store import _lease
from jupyter_deepresearch.extension.store.base import LeaseRequest
from jupyter_deepresearch.extension.store.owners import new_owner_id


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)
    return child.pid


def with_pid(owner: str, pid: int) -> str:
    host, _, nonce, namespace = owner.split(":")
    return f"{host}:{pid}:{nonce}:{namespace}"


@async_test
async def test_lease_of_a_dead_local_process_is_free_at_once(folder: Path) -> None:
    async with opened(folder) as store:
        state = new_state()
        gone = with_pid(new_owner_id(), dead_pid())
        assert await store.create(state, lease=LeaseRequest(gone, 3600))
        assert await store.lease_holder(state.task_id) is None
        assert await store.acquire_lease(state.task_id, new_owner_id(), 30)


@async_test
async def test_lease_of_another_host_or_namespace_waits_for_expiry(folder: Path) -> None:
    async with opened(folder) as store:
        host, pid, nonce, namespace = new_owner_id().split(":")
        others = [
            f"elsewhere:{dead_pid()}:{nonce}:{namespace}",  # another machine
            f"{host}:{dead_pid()}:{nonce}:1234",  # a container sharing our host name
            f"{host}:{pid}:{nonce}:{namespace}",  # this very process
        ]
        for owner in others:
            state = new_state()
            assert await store.create(state, lease=LeaseRequest(owner, 3600))
            assert await store.lease_holder(state.task_id) == owner
            assert not await store.acquire_lease(state.task_id, new_owner_id(), 30)


def test_control_files_are_taken_by_rename_once(folder: Path) -> None:
    folder.mkdir()
    _lease.request(folder, "t1", "pause")
    _lease.request(folder, "t1", "cancel")  # a newer request replaces the older one
    assert _lease.take(folder, ["t1", "t2"]) == {"t1": "cancel"}
    assert _lease.take(folder, ["t1"]) == {}
    assert not list(folder.iterdir())
