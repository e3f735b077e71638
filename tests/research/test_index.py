"""The local search: built-in corpus, source folders, on-disk cache, rebuilds, concurrent builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from research_fakes import FAST

from jupyter_deepresearch.extension.models import SearchSettings
from jupyter_deepresearch.extension.research import index, sources
from jupyter_deepresearch.extension.research.local_search import LocalSearch

pytestmark = pytest.mark.anyio

NOTES_MD = """# Deployment notes

Our cluster is called zebrafish.

## Rollback

To roll back a zebrafish release, run the quokka script
and wait for the canary to turn green.
"""


def _make_notes(root: Path) -> Path:
    notes = root / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "x.md").write_text(NOTES_MD)
    (notes / "plain.txt").write_text("First line.\n\nThe wombat protocol retries three times.\n")
    (notes / "sub" / "page.html").write_text(
        "<html><head><style>p {color: red}</style></head><body>\n<h1>Platypus guide</h1>\n"
        "<p>The platypus service listens on port 8123.</p>\n"
        "<script>var x = 1;</script></body></html>\n"
    )
    (notes / "tool.py").write_text(
        '"""Helpers for the narwhal pipeline."""\n\n\ndef flush_narwhal():\n'
        '    """Flush the narwhal queue to disk."""\n'
    )
    (notes / "nb.ipynb").write_text(
        json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "markdown",
                        "source": ["# Axolotl\n", "\n", "The axolotl job runs nightly.\n"],
                    },
                    {"cell_type": "code", "source": "print('hello')", "outputs": []},
                ],
                "metadata": {},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    (notes / ".hidden").mkdir()
    (notes / ".hidden" / "secret.md").write_text("The zebrafish password is hunter2.\n")
    (notes / "image.png").write_bytes(b"\x89PNG")
    return notes


def _local(
    root: Path, cache: Path, sources: tuple[str, ...] = ("notes",), k: int = 5
) -> LocalSearch:
    settings = SearchSettings(provider="local", sources=sources, max_results=k)
    return LocalSearch(settings, root_dir=root, cache_dir=cache, options=FAST)


def test_file_passages_locators_and_titles() -> None:
    passages = sources.file_passages("notes/x.md", NOTES_MD.encode())
    assert [(p["url"], p["title"]) for p in passages] == [
        ("file:notes/x.md#L3", "x.md: Deployment notes"),
        ("file:notes/x.md#L7", "x.md: Rollback"),
    ]
    assert all(p["id"] == p["url"] for p in passages)


async def test_source_folders_are_searched(tmp_path: Path, search_cache_dir: Path) -> None:
    _make_notes(tmp_path)
    search = _local(tmp_path, search_cache_dir)
    hits = await search.search("how do I roll back a zebrafish release")
    assert hits[0]["id"] == "file:notes/x.md#L7"
    assert hits[0]["url"] == "notes/x.md"  # the file under the server root: JupyterLab opens it
    assert "quokka" in hits[0]["text"]
    assert (await search.search("wombat protocol"))[0]["id"] == "file:notes/plain.txt#L1"
    platypus = (await search.search("platypus port"))[0]
    assert platypus["id"].startswith("file:notes/sub/page.html#L") and "8123" in platypus["text"]
    assert "color" not in platypus["text"] and "var x" not in platypus["text"]
    narwhal = await search.search("flush narwhal queue")
    assert narwhal[0]["id"] == "file:notes/tool.py#L4"
    assert (await search.search("axolotl nightly"))[0]["id"] == "file:notes/nb.ipynb#cell=1&L3"
    assert not [h for h in await search.search("hunter2 password") if "hidden" in h["id"]]


async def test_builtin_corpus_still_searched_beside_folders(
    tmp_path: Path, search_cache_dir: Path
) -> None:
    _make_notes(tmp_path)
    hits = await _local(tmp_path, search_cache_dir).search("asyncio task cancel")
    assert any(h["id"].startswith("python:asyncio") for h in hits)
    assert all(
        h["url"].startswith("https://docs.python.org/3.") for h in hits if h["id"][:7] == "python:"
    )


async def test_changed_sources_rebuild_the_index(tmp_path: Path, search_cache_dir: Path) -> None:
    notes = _make_notes(tmp_path)
    assert not await _local(tmp_path, search_cache_dir).search("capybara")
    (notes / "new.md").write_text("The capybara cache expires hourly.\n")
    hits = await _local(tmp_path, search_cache_dir).search("capybara")
    assert hits and hits[0]["id"] == "file:notes/new.md#L1"
    (notes / "new.md").write_text("Nothing here any more.\n")
    os.utime(notes / "new.md", (time.time() + 5, time.time() + 5))
    assert not await _local(tmp_path, search_cache_dir).search("capybara")
    # Superseded versions of this folder's index are removed, not piled up.
    names = [p.name for p in (search_cache_dir / "index").iterdir() if p.is_dir()]
    assert not [n for n in names if n.startswith(".tmp-")]
    src = {n.rsplit("-", 1)[0] for n in names if n.startswith("src-")}
    assert len([n for n in names if n.startswith("src-")]) == len(src)


def test_passages_not_whole_documents(search_cache_dir: Path) -> None:
    ix = index.open_index(search_cache_dir, [], Path("/"))
    with_topic = [p for p in ix.passages if p["id"] == "pydoc:topic:with"]
    assert len(with_topic) > 1
    assert all(len(p["text"].split()) < 400 for p in ix.passages)
    ids = {p["id"] for p in ix.passages}
    assert {
        "python:asyncio.tasks.Task.cancel",
        "python:builtins.sorted",
        "pydoc:topic:lambda",
    } <= ids
    assert not [
        i for i in ids if i.startswith(("python:test.", "python:idlelib", "python:tkinter"))
    ]


def test_search_is_deterministic_and_ranked(search_cache_dir: Path) -> None:
    ix = index.open_index(search_cache_dir, [], Path("/"))
    first = ix.search("How does asyncio cancel a task?", 8)
    assert first == ix.search("How does asyncio cancel a task?", 8)
    scores = [s for _, s in first]
    assert scores == sorted(scores, reverse=True)
    assert ix.search("qwxzv unknownword", 5) == []


def test_one_passage_per_source_unless_asked(search_cache_dir: Path) -> None:
    ix = index.open_index(search_cache_dir, [], Path("/"))
    # The `timeit` module's long docstring has several passages that all match.
    ids = [p["id"] for p, _ in ix.search("time a small code snippet with timeit", 10)]
    assert len(ids) == len(set(ids)) == 10
    two = [p["id"] for p, _ in ix.search("time a small code snippet with timeit", 10, 2)]
    assert max(two.count(i) for i in two) == 2


def test_building_the_corpus_imports_nothing_dangerous() -> None:
    code = textwrap.dedent(
        """
        import sys
        from jupyter_deepresearch.extension.research import corpus
        before = set(sys.modules)
        passages = corpus.builtin_passages()
        new = set(sys.modules) - before
        bad = {"antigravity", "this", "tkinter", "turtle", "idlelib", "webbrowser", "lib2to3"}
        assert not (new & bad), new & bad
        assert len(passages) > 3000
        print(len(new))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0" or int(out.stdout) < 40


def test_two_processes_building_at_once(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from jupyter_deepresearch.extension.research import index
        ix = index.open_index(Path({str(cache)!r}), [], Path("/"))
        print(len(ix.passages), ix.search("asyncio cancel task", 3)[0][0]["id"])
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert outs[0][0] == outs[1][0]
    names = sorted(p.name for p in (cache / "index").iterdir() if p.is_dir())
    assert [n.split("-")[0] for n in names] == ["bm25", "builtin"]


def test_damaged_cache_is_rebuilt(tmp_path: Path, search_cache_dir: Path) -> Any:
    ix = index.open_index(search_cache_dir, [], Path("/"))
    damaged = tmp_path / "cache"
    import shutil

    shutil.copytree(
        search_cache_dir / "index", damaged / "index", ignore=shutil.ignore_patterns("*.lock")
    )
    combo = next(p for p in (damaged / "index").iterdir() if p.name.startswith("bm25-"))
    (combo / "params.index.json").write_text("{not json")
    index.clear_memory_cache()
    again = index.open_index(damaged, [], Path("/"))
    assert len(again.passages) == len(ix.passages)


async def test_relevant_notes_get_a_place_beside_the_docs(
    tmp_path: Path, search_cache_dir: Path
) -> None:
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "a.md").write_text(
        "# Team notes\n\nOur asyncio services cancel tasks on shutdown via TaskGroup.\n"
    )
    search = _local(tmp_path, search_cache_dir, sources=("team",))
    hits = await search.search("How does asyncio cancel a task?")
    assert hits[-1]["id"] == "file:team/a.md#L3"
    assert any(h["id"].startswith("python:asyncio") for h in hits)
    assert not [h for h in await search.search("how to sort a list") if h["id"].startswith("file:")]


def test_a_new_index_version_rebuilds_every_component(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Components hold tokens, which this module computes: a cached one from an older version
    # must not be reused (it was, until the version became part of its fingerprint).
    notes = _make_notes(tmp_path)
    cache = tmp_path / "cache"

    def components() -> set[str]:
        names = (p.name for p in (cache / "index").iterdir() if p.is_dir())
        return {n for n in names if n.startswith(("builtin-", "src-"))}

    index.open_index(cache, [notes], tmp_path)
    before = components()
    monkeypatch.setattr(index, "INDEX_VERSION", index.INDEX_VERSION + "-next")
    index.clear_memory_cache()
    index.open_index(cache, [notes], tmp_path)
    after = components()
    assert len(before) == len(after) == 2
    assert not before & after
