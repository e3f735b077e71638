"""Source folders are untrusted: links to devices or out of the root, FIFOs, huge or unparsable
files and links to hidden files are skipped with a reason, and the rest is still searched."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_deepresearch.extension.research import index, sources

# Before the fix these hang (a FIFO) or exhaust memory (/dev/zero): fail them in bounded time.
pytestmark = pytest.mark.timeout(120)

NORMAL = "# Rollback\n\nTo roll back a zebrafish release, run the quokka script.\n"
SECRET = "# Secret\n\nThe zebrafish quokka password is hunter2.\n"


def unblock_fifo(path: Path) -> None:
    """Let a reader stuck opening `path` go (only a test of unfixed code gets stuck there)."""
    with contextlib.suppress(OSError):  # no reader waiting: nothing to release
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def hostile(root: Path, kind: str) -> tuple[str, str]:
    """Make one hostile entry of `kind` in `root/notes`; its path under root and skip reason."""
    notes = root / "notes"
    if kind == "dev-zero":
        (notes / "zero.md").symlink_to("/dev/zero")
        return "notes/zero.md", "it points outside the server's root directory"
    if kind == "fifo":
        os.mkfifo(notes / "pipe.md")
        return "notes/pipe.md", "it is not a regular file"
    if kind == "outside-root":
        outside = root.parent / "outside"
        outside.mkdir()
        (outside / "secret.md").write_text(SECRET)
        (notes / "link.md").symlink_to(outside / "secret.md")
        return "notes/link.md", "it points outside the server's root directory"
    if kind == "hidden-target":
        (root / ".secret.md").write_text(SECRET)
        (notes / "innocent.md").symlink_to("../.secret.md")
        return "notes/innocent.md", "it points to a hidden file or folder"
    if kind == "hidden-folder-target":
        (root / ".private").mkdir()
        (root / ".private" / "keys.md").write_text(SECRET)
        (notes / "keys.md").symlink_to("../.private/keys.md")
        return "notes/keys.md", "it points to a hidden file or folder"
    if kind == "huge-expression":
        (notes / "sum.py").write_text("x = " + "+".join(["1"] * 200_000) + "\n")
        return "notes/sum.py", "it cannot be parsed (RecursionError)"
    if kind == "deep-notebook":
        (notes / "deep.ipynb").write_text('{"cells": ' + "[" * 5000 + "]" * 5000 + "}")
        return "notes/deep.ipynb", "it cannot be parsed (RecursionError)"
    raise AssertionError(kind)


KINDS = [
    "dev-zero",
    "fifo",
    "outside-root",
    "hidden-target",
    "hidden-folder-target",
    "huge-expression",
    "deep-notebook",
]


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "root"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "normal.md").write_text(NORMAL)
    yield root
    for fifo in (root / "notes").glob("*.md"):
        if fifo.is_fifo():
            unblock_fifo(fifo)


def search_files(ix: index.LocalIndex, query: str) -> list[str]:
    return [p["url"] for p, _ in ix.search(query, 10) if p["url"].startswith("file:")]


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_file_is_skipped_and_the_folder_still_searched(
    kind: str, root: Path, search_cache_dir: Path
) -> None:
    shown, reason = hostile(root, kind)
    ix = index.open_index(search_cache_dir, [root / "notes"], root)
    assert search_files(ix, "roll back zebrafish quokka") == ["file:notes/normal.md#L3"]
    assert not search_files(ix, "hunter2 password")
    assert ix.skipped == [sources.Skip(shown, reason)]


def test_all_at_once_each_named_once(root: Path, search_cache_dir: Path) -> None:
    expected = sorted(hostile(root, kind) for kind in KINDS)
    ix = index.open_index(search_cache_dir, [root / "notes"], root)
    assert sorted(ix.skipped) == expected
    assert search_files(ix, "roll back zebrafish quokka") == ["file:notes/normal.md#L3"]
    # A later run gets the same report from the cached index, not only the run that built it.
    index.clear_memory_cache()
    again = index.open_index(search_cache_dir, [root / "notes"], root)
    assert sorted(again.skipped) == expected


def test_device_is_never_opened_even_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "zero.md").symlink_to("/dev/zero")
    with pytest.raises(sources.Skipped, match="not a regular file"):
        sources.read_source(tmp_path / "zero.md", Path("/"), 1000)


def test_file_over_the_cap_is_skipped(root: Path, search_cache_dir: Path) -> None:
    big = "The capybara cache expires hourly.\n\n" * 100  # 3,600 bytes
    (root / "notes" / "big.md").write_text(big)
    ix = index.open_index(search_cache_dir, [root / "notes"], root, max_file_bytes=1000)
    assert ix.skipped == [
        sources.Skip("notes/big.md", "it is larger than max_source_file_bytes (1000 bytes)")
    ]
    assert not search_files(ix, "capybara cache")
    assert search_files(ix, "roll back zebrafish quokka") == ["file:notes/normal.md#L3"]
    # Raising the cap is a change of sources: the index is rebuilt with the file.
    roomy = index.open_index(search_cache_dir, [root / "notes"], root, max_file_bytes=10_000)
    assert roomy.skipped == []
    assert "file:notes/big.md#L1" in search_files(roomy, "capybara cache")


def test_links_inside_the_root_to_visible_files_still_count(
    root: Path, search_cache_dir: Path
) -> None:
    (root / "shared").mkdir()
    (root / "shared" / "tips.md").write_text("The wombat protocol retries three times.\n")
    (root / "notes" / "tips.md").symlink_to("../shared/tips.md")
    ix = index.open_index(search_cache_dir, [root / "notes"], root)
    assert ix.skipped == []
    assert search_files(ix, "wombat protocol") == ["file:shared/tips.md#L1"]


def test_notebook_that_is_not_a_notebook_is_named(root: Path, search_cache_dir: Path) -> None:
    (root / "notes" / "list.ipynb").write_text(json.dumps([1, 2, 3]))
    ix = index.open_index(search_cache_dir, [root / "notes"], root)
    assert ix.skipped == [sources.Skip("notes/list.ipynb", "it cannot be parsed (ValueError)")]
