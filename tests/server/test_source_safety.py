"""A real server given hostile source folders: the task completes, quotes the normal file,
never the hidden one, names every skipped file, and leaves no index thread blocked."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dr_testing.sse_events import parse_events
from dr_testing.waiting import eventually, wait_status
from jupyter_deepresearch.extension.research import sources

# Unfixed code hangs on the FIFO or eats memory on /dev/zero: fail in bounded time instead.
pytestmark = pytest.mark.timeout(180)

CAP = 500_000  # above the unparsable files, below big.md
QUERY = "How do I roll back a zebrafish release with the quokka script?"
NORMAL = "# Rollback\n\nTo roll back a zebrafish release, run the quokka script twice.\n"
SECRET = "# Rollback secret\n\nThe zebrafish quokka rollback password is hunter2.\n"
SKIPPED = {
    "notes/zero.md": "it points outside the server's root directory",
    "notes/pipe.md": "it is not a regular file",
    "notes/big.md": f"it is larger than max_source_file_bytes ({CAP} bytes)",
    "notes/sum.py": "it cannot be parsed (RecursionError)",
    "notes/deep.ipynb": "it cannot be parsed (RecursionError)",
    "hid/innocent.md": "it points to a hidden file or folder",
}


@pytest.fixture
def dr_config() -> dict[str, Any]:
    return {"max_source_file_bytes": CAP}  # the built-in pipeline, a small cap


@pytest.fixture
def hostile_root(jp_root_dir: Path) -> Iterator[Path]:
    notes = jp_root_dir / "notes"
    notes.mkdir()
    (notes / "normal.md").write_text(NORMAL)
    (notes / "zero.md").symlink_to("/dev/zero")
    os.mkfifo(notes / "pipe.md")
    (notes / "big.md").write_text("The zebrafish quokka filler line.\n" * 20_000)
    (notes / "sum.py").write_text("x = " + "+".join(["1"] * 200_000) + "\n")
    (notes / "deep.ipynb").write_text('{"cells": ' + "[" * 5000 + "]" * 5000 + "}")
    (jp_root_dir / ".secret.md").write_text(SECRET)
    (jp_root_dir / "hid").mkdir()
    (jp_root_dir / "hid" / "innocent.md").symlink_to("../.secret.md")
    yield jp_root_dir
    # Release a reader stuck opening the FIFO (only unfixed code gets stuck there).
    with contextlib.suppress(OSError):
        os.close(os.open(notes / "pipe.md", os.O_WRONLY | os.O_NONBLOCK))


def threads_reading_sources() -> list[str]:
    """Names of threads of this process (the server's) now inside the source-folder reader."""
    stuck = []
    frames = sys._current_frames()
    for thread_id, frame in frames.items():
        walk: Any = frame
        while walk is not None:
            if walk.f_code.co_filename == sources.__file__:
                stuck.append(str(thread_id))
                break
            walk = walk.f_back
    return stuck


async def no_thread_left_reading() -> None:
    async def none_left() -> bool:
        return not threads_reading_sources()

    await eventually(none_left, timeout=30)


async def test_hostile_sources_are_skipped_by_name_and_the_task_completes(
    api: Any, hostile_root: Path
) -> None:
    body = {"query": QUERY, "search": {"sources": ["notes", "hid"]}}
    created = await api("POST", "tasks", body=body)
    assert created.code == 201, created.body
    task_id = json.loads(created.body)["task_id"]
    done = await wait_status(api, task_id, "completed", "failed", timeout=120)
    assert done["status"] == "completed", done.get("error")
    result = done["result"]
    assert "file:notes/normal.md#L3" in [s["id"] for s in result["sources"]]
    assert "quokka script twice" in result["report"]

    events = parse_events((await api("GET", "tasks", task_id, "events")).body)
    messages = [data.get("message", "") for _, kind, data in events if kind == "progress"]
    assert {f"Skipped {path}: {reason}" for path, reason in SKIPPED.items()} <= set(messages)
    everything = json.dumps([data for _, _, data in events])
    assert "hunter2" not in everything and ".secret.md" not in everything
    await no_thread_left_reading()


async def test_link_to_a_hidden_file_is_not_quoted(api: Any, jp_root_dir: Path) -> None:
    (jp_root_dir / ".secret.md").write_text(SECRET)
    (jp_root_dir / "hid").mkdir()
    (jp_root_dir / "hid" / "normal.md").write_text(NORMAL)
    (jp_root_dir / "hid" / "innocent.md").symlink_to("../.secret.md")
    body = {
        "query": "What is the zebrafish quokka rollback password?",
        "search": {"sources": ["hid"]},
    }
    task_id = json.loads((await api("POST", "tasks", body=body)).body)["task_id"]
    done = await wait_status(api, task_id, "completed", "failed", timeout=120)
    assert done["status"] == "completed", done.get("error")
    assert "file:hid/normal.md#L3" in [s["id"] for s in done["result"]["sources"]]
    events = parse_events((await api("GET", "tasks", task_id, "events")).body)
    assert "hunter2" not in json.dumps([data for _, _, data in events])
    messages = [data.get("message") for _, kind, data in events if kind == "progress"]
    assert "Skipped hid/innocent.md: it points to a hidden file or folder" in messages


@pytest.fixture
def fifo_root(jp_root_dir: Path) -> Iterator[Path]:
    """`pipes/`: a normal file and a FIFO that nobody ever writes to."""
    pipes = jp_root_dir / "pipes"
    pipes.mkdir()
    (pipes / "normal.md").write_text(NORMAL)
    os.mkfifo(pipes / "pipe.md")
    yield jp_root_dir
    with contextlib.suppress(OSError):
        os.close(os.open(pipes / "pipe.md", os.O_WRONLY | os.O_NONBLOCK))


async def test_fifo_in_a_source_folder_neither_blocks_the_task_nor_a_thread(
    api: Any, fifo_root: Path
) -> None:
    body = {"query": QUERY, "search": {"sources": ["pipes"]}}
    task_id = json.loads((await api("POST", "tasks", body=body)).body)["task_id"]
    done = await wait_status(api, task_id, "completed", "failed", timeout=120)
    assert done["status"] == "completed", done.get("error")
    assert "file:pipes/normal.md#L3" in [s["id"] for s in done["result"]["sources"]]
    events = parse_events((await api("GET", "tasks", task_id, "events")).body)
    messages = [data.get("message") for _, kind, data in events if kind == "progress"]
    assert "Skipped pipes/pipe.md: it is not a regular file" in messages
    await no_thread_left_reading()


@pytest.mark.parametrize("dr_config", [{"pipeline": "dr_testing.pipelines:paced_real"}])
async def test_cancel_while_searching_a_folder_with_a_fifo(api: Any, fifo_root: Path) -> None:
    body = {"query": QUERY, "search": {"sources": ["pipes"]}}
    task_id = json.loads((await api("POST", "tasks", body=body)).body)["task_id"]

    async def searching() -> bool:
        info = json.loads((await api("GET", "tasks", task_id)).body)
        return bool(info["step"] == "search" or info["status"] != "running")

    await eventually(searching, timeout=60)
    cancelled = await api("POST", "tasks", task_id, "cancel")
    assert json.loads(cancelled.body)["status"] == "cancelled", cancelled.body
    await no_thread_left_reading()
