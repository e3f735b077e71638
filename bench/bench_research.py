"""Benchmark of the offline research engine (extractive writer + local BM25 search).

Prints how long the first index build takes against a cached load, how long an offline
research takes for a few question sizes and breadth/depth settings, and the quality figures
over the evaluation set (`tests/research/evaluation_set.py`): the share of answers citing the
expected source, the citation check's support, and the time per research. Writes the figures
to `bench/results/research.json`. Run: `python bench/bench_research.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_deepresearch.extension.models import ResearchRequest
from jupyter_deepresearch.extension.research import index, run_research
from jupyter_deepresearch.extension.research.context import DEFAULT_MAX_SOURCE_FILE_BYTES

RESULTS = Path(__file__).parent / "results" / "research.json"
EVALUATION_DIR = Path(__file__).resolve().parent.parent / "tests" / "research"

QUESTIONS = {
    "short (3 words)": "asyncio task cancellation",
    "medium (7 words)": "How does asyncio cancel a task?",
    "long (60 words)": (
        "I run a web crawler with asyncio: a TaskGroup starts one task per URL, each task "
        "awaits an httpx request with a timeout, and on shutdown I cancel the remaining tasks. "
        "How does cancelling a task work, what happens to the CancelledError inside the "
        "coroutine, how do shield and wait_for interact with cancellation, and how can I "
        "clean up resources in a finally block?"
    ),
}
SHAPES = [(1, 1), (3, 1), (3, 2), (5, 3)]  # (breadth, depth)


@dataclass
class _Ctx:
    """A minimal in-memory `ResearchContext`."""

    request: ResearchRequest
    root_dir: Path
    cache_dir: Path
    checkpoints: dict[str, Any] = field(default_factory=dict)
    max_source_file_bytes: int = DEFAULT_MAX_SOURCE_FILE_BYTES

    async def progress(self, step: str, percentage: int, message: str | None = None) -> None:
        return None

    async def output(self, text: str) -> None:
        return None

    def checkpoint(self, key: str) -> Any:
        return self.checkpoints.get(key)

    async def save_checkpoint(self, key: str, value: Any) -> None:
        self.checkpoints[key] = json.loads(json.dumps(value))


def _timed(fn: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - started, value


def bench_index(cache: Path) -> dict[str, Any]:
    index.clear_memory_cache()
    first, ix = _timed(index.open_index, cache, [], Path("/"))
    index.clear_memory_cache()
    cached, _ = _timed(index.open_index, cache, [], Path("/"))
    in_memory, _ = _timed(index.open_index, cache, [], Path("/"))
    searches = []
    for _ in range(50):
        t, _ = _timed(ix.search, "How does asyncio cancel a task?", 5)
        searches.append(t)
    size = sum(p.stat().st_size for p in (cache / "index").rglob("*") if p.is_file())
    return {
        "passages": len(ix.passages),
        "first_build_s": round(first, 3),
        "cached_load_s": round(cached, 3),
        "in_memory_s": round(in_memory, 6),
        "search_median_ms": round(statistics.median(searches) * 1000, 2),
        "cache_bytes": size,
    }


def bench_research(cache: Path, repeat: int) -> list[dict[str, Any]]:
    rows = []
    for label, question in QUESTIONS.items():
        for breadth, depth in SHAPES:
            times = []
            report = ""
            sources = 0
            for _ in range(repeat):
                request = ResearchRequest.model_validate(
                    {"query": question, "report": {"breadth": breadth, "depth": depth}}
                )
                ctx = _Ctx(request, Path(tempfile.gettempdir()), cache)
                started = time.perf_counter()
                result = asyncio.run(run_research(ctx))
                times.append(time.perf_counter() - started)
                report, sources = result.report, len(result.sources)
            rows.append(
                {
                    "question": label,
                    "breadth": breadth,
                    "depth": depth,
                    "median_s": round(statistics.median(times), 3),
                    "min_s": round(min(times), 3),
                    "report_chars": len(report),
                    "sources": sources,
                }
            )
    return rows


def bench_quality(cache: Path) -> dict[str, Any]:
    """Right-source rate, citation support and time per research over the evaluation set."""
    sys.path.insert(0, str(EVALUATION_DIR))
    from evaluation_set import EVALUATION_SET

    hits, supports, times = 0, [], []
    for question, expected in EVALUATION_SET:
        ctx = _Ctx(ResearchRequest(query=question), Path(tempfile.gettempdir()), cache)
        started = time.perf_counter()
        result = asyncio.run(run_research(ctx))
        times.append(time.perf_counter() - started)
        hits += expected in [source.id for source in result.sources]
        if result.citation_support is not None:
            supports.append(result.citation_support)
    return {
        "questions": len(EVALUATION_SET),
        "right_source_rate": round(hits / len(EVALUATION_SET), 3),
        "citation_support_mean": round(statistics.mean(supports), 3) if supports else None,
        "citation_support_min": round(min(supports), 3) if supports else None,
        "research_mean_s": round(statistics.mean(times), 3),
        "research_median_s": round(statistics.median(times), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per research shape")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-research-") as tmp:
        cache = Path(tmp)
        idx = bench_index(cache)
        print(
            f"Built-in corpus: {idx['passages']} passages, cache {idx['cache_bytes'] / 1e6:.1f} MB"
        )
        print(f"  first index build : {idx['first_build_s']:.2f} s")
        print(f"  cached load (disk): {idx['cached_load_s']:.3f} s")
        print(f"  loaded (memory)   : {idx['in_memory_s'] * 1000:.3f} ms")
        print(f"  one BM25 search   : {idx['search_median_ms']:.2f} ms (median)")
        rows = bench_research(cache, args.repeat)
        quality = bench_quality(cache)
    print(f"\nOffline research (extractive + local), median of {args.repeat} runs, index loaded:")
    print(f"  {'question':<18} {'breadth':>7} {'depth':>5} {'median':>9} {'sources':>7}")
    for row in rows:
        print(
            f"  {row['question']:<18} {row['breadth']:>7} {row['depth']:>5} "
            f"{row['median_s']:>8.3f}s {row['sources']:>7}"
        )
    print(
        f"\nQuality over the evaluation set ({quality['questions']} questions, offline defaults):"
    )
    print(f"  cite the expected source : {quality['right_source_rate']:.0%} (target >= 90%)")
    print(
        f"  citation support        : mean {quality['citation_support_mean']}, "
        f"lowest {quality['citation_support_min']} (share of claims their passage supports)"
    )
    print(
        f"  time per research       : mean {quality['research_mean_s']:.3f} s, "
        f"median {quality['research_median_s']:.3f} s"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "platform": platform.platform(),
                "index": idx,
                "research": rows,
                "quality": quality,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nWrote {RESULTS}")


if __name__ == "__main__":
    main()
