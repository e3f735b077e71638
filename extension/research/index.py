"""The on-disk BM25 index of the local search: built lazily, cached, rebuilt when sources change.

Layout under `cache_dir/index/`: one folder per corpus component (`builtin-<fp>`, one
`src-<folder hash>-<fp>` per source folder) holding passages, tokens and the files skipped
(`skipped.json`, so every run reports them, not only the one that built it), and one `bm25-...`
folder per combination holding the `bm25s` index. A folder appears by atomic rename of a
finished temporary folder while a file lock is held, so two processes building at once neither
collide nor read half an index. All functions here are blocking: call them from a worker thread.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bm25s
import numpy as np
from filelock import FileLock

from . import corpus, sources
from .context import DEFAULT_MAX_SOURCE_FILE_BYTES
from .corpus import Passage
from .quiet import quiet_logger
from .sources import Skip
from .text import TOKENIZER_VERSION, tokenize

INDEX_VERSION = "4"
MODULE_BOOST = 1.5
NAME_BOOST = 1.3  # a query word that is an object's own name ("mean", "joinpath") singles it out
BM25_B = 0.5  # docstrings vary from one line to pages: soften BM25's length normalisation
USER_SOURCE_SHARE = 0.6  # a source-folder passage this close to the best hit gets a place
MEMORY_CACHE = 4  # combined indexes kept loaded in this process

log = logging.getLogger(__name__)


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@dataclass
class LocalIndex:
    """A loaded BM25 index over passages; `search` is pure CPU (call it off the event loop)."""

    passages: list[Passage]
    retriever: bm25s.BM25
    vocab: dict[str, int]
    location: Path
    modules: dict[str, np.ndarray] = field(default_factory=dict)  # top module -> passage rows
    names: dict[str, np.ndarray] = field(default_factory=dict)  # an object's own name -> rows
    user_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    skipped: list[Skip] = field(default_factory=list)  # source files not searched, and why

    def __post_init__(self) -> None:
        rows: dict[str, list[int]] = {}
        names: dict[str, list[int]] = {}
        user: list[int] = []
        for i, passage in enumerate(self.passages):
            if passage["id"].startswith("python:"):
                parts = passage["id"][7:].lower().split(".")
                rows.setdefault(parts[0], []).append(i)
                names.setdefault(_own_name(parts), []).append(i)
            elif passage["id"].startswith("file:"):
                user.append(i)
        self.modules = {m: np.asarray(r, dtype=np.int64) for m, r in rows.items()}
        self.names = {n: np.asarray(r, dtype=np.int64) for n, r in names.items()}
        self.user_rows = np.asarray(user, dtype=np.int64)

    def search(self, query: str, k: int, per_source: int = 1) -> list[tuple[Passage, float]]:
        """The best `k` passages for `query`, at most `per_source` per source; ties by order.

        One passage per source by default: a report cites sources, so `k` hits are best spent
        on `k` documented objects, not on the second chunk of a long module docstring.
        """
        ids: list[int] = []
        tokens = tokenize(query)
        for token in tokens:
            tid = self.vocab.get(token)
            if tid is not None and tid not in ids:
                ids.append(tid)
        if not ids or not self.passages:
            return []
        scores = np.asarray(self.retriever.get_scores_from_ids(ids), dtype=np.float64)
        # A question that names a module ("parse JSON", "with pathlib") wants that module's docs.
        raw_best = float(scores.max())
        words = {w.lower() for w in re.findall(r"[A-Za-z_]\w*", query)}
        named = words & self.modules.keys()
        for module in sorted(named):
            scores[self.modules[module]] *= MODULE_BOOST
        for name in sorted(words & self.names.keys()):
            if tokenize(name):  # a stop word ("with", "all") is no sign of the object it names
                scores[self.names[name]] *= NAME_BOOST
        out = self._top(scores, k, per_source)
        if len(self.user_rows) and not any(p["id"].startswith("file:") for p, _ in out) and out:
            # The user named these folders: their best passage takes the last place when it is
            # nearly as good as the documentation (BM25 favours the large built-in corpus).
            mine = self._top(scores, 1, per_source, rows=self.user_rows)
            if mine and mine[0][1] >= USER_SOURCE_SHARE * raw_best:
                out = [*out[: k - 1], mine[0]]
        return out

    def _top(
        self, scores: np.ndarray, k: int, per_source: int, rows: np.ndarray | None = None
    ) -> list[tuple[Passage, float]]:
        candidates = np.arange(len(scores)) if rows is None else rows
        want = min(len(candidates), max(k * 6, 30))
        sub = scores[candidates]
        top = candidates[np.argpartition(-sub, want - 1)[:want]] if want < len(sub) else candidates
        order = sorted(
            (int(i) for i in top if scores[i] > 0), key=lambda i: (-round(float(scores[i]), 6), i)
        )
        out: list[tuple[Passage, float]] = []
        taken: dict[str, int] = {}
        for i in order:
            passage = self.passages[i]
            if taken.get(passage["id"], 0) >= per_source:
                continue
            taken[passage["id"]] = taken.get(passage["id"], 0) + 1
            out.append((passage, round(float(scores[i]), 4)))
            if len(out) >= k:
                break
        return out


def _own_name(parts: list[str]) -> str:
    """`cancel` for `asyncio.tasks.Task.cancel`; a constructor's is its class's."""
    return parts[-2] if parts[-1] == "__init__" and len(parts) > 1 else parts[-1]


_memory: dict[Path, LocalIndex] = {}
_memory_lock = threading.Lock()


Produce = Callable[[], tuple[list[Passage], list[Skip]]]


def open_index(
    cache_dir: Path,
    folders: list[Path],
    root_dir: Path,
    max_file_bytes: int = DEFAULT_MAX_SOURCE_FILE_BYTES,
) -> LocalIndex:
    """The index over the built-in corpus plus `folders` (resolved, inside the resolved
    `root_dir`), reading no source file larger than `max_file_bytes`."""
    base = cache_dir / "index"
    base.mkdir(parents=True, exist_ok=True)
    # A component's tokens depend on this module and the tokenizer as well as on its files.
    versions = [INDEX_VERSION, TOKENIZER_VERSION]
    components: list[tuple[str, str, Produce]] = [
        ("builtin", _digest(versions + corpus.builtin_fingerprint_parts()), _builtin)
    ]
    for folder in folders:
        name = "src-" + _digest([str(folder)])
        fp = _digest(versions + sources.folder_fingerprint_parts(folder, max_file_bytes))
        read = functools.partial(sources.folder_passages, folder, root_dir, max_file_bytes)
        components.append((name, fp, read))
    parts = [INDEX_VERSION, TOKENIZER_VERSION]
    comp_dirs: list[Path] = []
    for name, fp, produce in components:
        build = functools.partial(_write_component, produce=produce)
        comp_dirs.append(_ensure(base, name, fp, build))
        parts.append(f"{name}-{fp}")
    combo_name = "bm25-" + _digest([name for name, _, _ in components])
    combo_fp = _digest(parts)
    with _memory_lock:
        cached = _memory.get(base / f"{combo_name}-{combo_fp}")
    if cached is not None:
        return cached
    combo = _ensure(base, combo_name, combo_fp, lambda tmp: _write_bm25(tmp, comp_dirs))
    try:
        index = _load(combo, comp_dirs)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("Search index at %s is damaged (%s); rebuilding it.", combo, exc)
        shutil.rmtree(combo, ignore_errors=True)
        combo = _ensure(base, combo_name, combo_fp, lambda tmp: _write_bm25(tmp, comp_dirs))
        index = _load(combo, comp_dirs)
    with _memory_lock:
        _memory[combo] = index
        while len(_memory) > MEMORY_CACHE:
            del _memory[next(iter(_memory))]
    return index


def clear_memory_cache() -> None:
    """Forget loaded indexes (tests and benchmarks measure cold loads with it)."""
    with _memory_lock:
        _memory.clear()


def _ensure(base: Path, name: str, fp: str, build: Callable[[Path], None]) -> Path:
    """`base/name-fp`, built by `build(tmp)` under a lock unless a complete one exists."""
    final = base / f"{name}-{fp}"
    if (final / "meta.json").exists():
        return final
    with FileLock(str(base / f"{name}.lock")):
        if (final / "meta.json").exists():
            return final  # another process finished it while we waited
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=base))
        try:
            build(tmp)
            (tmp / "meta.json").write_text(json.dumps({"name": name, "fingerprint": fp}))
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for stale in base.glob(f"{name}-*"):
            if stale != final and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
    return final


def _builtin() -> tuple[list[Passage], list[Skip]]:
    return corpus.builtin_passages(), []


def _write_component(folder: Path, *, produce: Produce) -> None:
    passages, skipped = produce()
    rows = [[p["id"], p["title"], p["url"], p["text"]] for p in passages]
    words = {w.lower() for p in passages for w in re.findall(r"[A-Za-z]{3,}", p["text"])}
    tokens = [
        tokenize(f"{p['title']} {p['title']} {p['text']} {_name_words(p['id'], words)}")
        for p in passages
    ]
    (folder / "passages.json").write_text(json.dumps(rows, ensure_ascii=False))
    (folder / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False))
    (folder / "skipped.json").write_text(json.dumps(skipped, ensure_ascii=False))


def _name_words(source_id: str, words: set[str]) -> str:
    """The two words run together in a lower-case name (`joinpath` -> "join path", `getenv` ->
    "get env"), so that questions in prose find it; "" for any other id or name."""
    if not source_id.startswith("python:"):
        return ""
    name = _own_name(source_id[7:].split("."))
    if not (name.isalpha() and name.islower()):  # CamelCase and snake_case: `tokenize` splits
        return ""
    splits = [
        (name[:i], name[i:])
        for i in range(3, len(name) - 2)
        if name[:i] in words and name[i:] in words
    ]
    # The most even split: "namedtuple" is "named tuple", not "name dtuple".
    best = max(splits, key=lambda pair: min(len(pair[0]), len(pair[1])), default=None)
    return " ".join(best) if best else ""


def _write_bm25(folder: Path, comp_dirs: list[Path]) -> None:
    vocab: dict[str, int] = {}
    ids: list[list[int]] = []
    for comp in comp_dirs:
        for doc in json.loads((comp / "tokens.json").read_text()):
            ids.append([vocab.setdefault(t, len(vocab)) for t in doc])
    if not ids:
        ids = [[]]
    retriever = bm25s.BM25(b=BM25_B)
    with quiet_logger("bm25s"):
        retriever.index((ids, vocab), show_progress=False)
        retriever.save(str(folder), show_progress=False)


def _load(combo: Path, comp_dirs: list[Path]) -> LocalIndex:
    passages: list[Passage] = []
    skipped: list[Skip] = []
    for comp in comp_dirs:
        for pid, title, url, text in json.loads((comp / "passages.json").read_text()):
            passages.append(Passage(id=pid, title=title, url=url, text=text))
        if (comp / "skipped.json").exists():  # a built-in component from before it existed
            skipped.extend(Skip(*row) for row in json.loads((comp / "skipped.json").read_text()))
    with quiet_logger("bm25s"):
        retriever = bm25s.BM25.load(str(combo), show_progress=False)
    vocab = {str(k): int(v) for k, v in retriever.vocab_dict.items()}
    return LocalIndex(
        passages=passages, retriever=retriever, vocab=vocab, location=combo, skipped=skipped
    )
