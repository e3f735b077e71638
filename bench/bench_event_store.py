"""Cost of recording events: the `files` store vs the seed's rewrite-everything design.

Run: python bench/bench_event_store.py [--quick]. Prints tables and writes
bench/results/event_store.json. Not a test; numbers depend on the disk.

- ours: `FileTaskStore.append` per output chunk, `flush()` (write + fsync of log and index)
  every 100 events, so disk cost is included far more often than the 1 s default would.
- seed: on every output chunk, rewrite `{taskId}.json` with all outputs so far, atomically
  (temp file, fsync, rename), as the seed's app saved its task after each chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # a checkout without an install still runs

from jupyter_deepresearch.extension.store import _atomic  # noqa: E402
from jupyter_deepresearch.extension.store.base import TaskState, utcnow  # noqa: E402
from jupyter_deepresearch.extension.store.codec import iso  # noqa: E402
from jupyter_deepresearch.extension.store.files import FileTaskStore  # noqa: E402
from jupyter_deepresearch.extension.store.seed_format import (  # noqa: E402
    encode_snapshot,
    snapshot_parts,
)

CHUNK = "A streamed chunk of the research report, about eighty bytes long, give or take. "
FLUSH_EVERY = 100
REPEATS = 3  # runs of ours per size; the median is reported


class ByteCounter:
    """Counts bytes through the store's single write function."""

    def __init__(self) -> None:
        self.total = 0
        self._real = _atomic.write_all

    def __enter__(self) -> ByteCounter:
        def counting(fd: int, data: bytes) -> None:
            self.total += len(data)
            self._real(fd, data)

        _atomic.write_all = counting
        return self

    def __exit__(self, *exc: object) -> None:
        _atomic.write_all = self._real


async def bench_ours(n: int, folder: Path) -> dict[str, Any]:
    """Record `n` output events through the store; time and bytes per event."""
    store = FileTaskStore(folder, flush_interval=3600)
    await store.open()
    state = TaskState(task_id="0" * 32, request={"query": "bench"})
    await store.create(state)
    window = max(1, n // 50)
    first_window = last_window = 0.0
    with ByteCounter() as counter:
        start = time.perf_counter()
        mark = start
        for i in range(n):
            await store.append(state, "output", {"text": f"{i} {CHUNK}"})
            if (i + 1) % FLUSH_EVERY == 0:
                await store.flush()
            if (i + 1) % window == 0:
                now = time.perf_counter()
                if i + 1 == window:
                    first_window = now - mark
                last_window = now - mark
                mark = now
        await store.flush()
        elapsed = time.perf_counter() - start
        written = counter.total
    await store.save(state)
    first_event = await _time_to_first_event(FileTaskStore(folder), state.task_id, n - 10)
    await store.close()
    return {
        "events": n,
        "seconds": elapsed,
        "us_per_event": elapsed / n * 1e6,
        "bytes_per_event": written / n,
        "us_per_event_first_2pct": first_window / window * 1e6,
        "us_per_event_last_2pct": last_window / window * 1e6,
        "first_event_ms_after_n_minus_10": first_event * 1e3,
    }


async def _time_to_first_event(store: FileTaskStore, task_id: str, after: int) -> float:
    start = time.perf_counter()
    stream = store.events(task_id, after)
    await stream.__anext__()
    elapsed = time.perf_counter() - start
    await stream.aclose()  # type: ignore[attr-defined]  # typed AsyncIterator, is a generator
    return elapsed


async def median_of(times: int, run: Callable[[int], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """The run with the median time per event (a shared machine makes single runs noisy)."""
    rows = sorted([await run(i) for i in range(times)], key=lambda r: r["us_per_event"])
    return rows[len(rows) // 2]


def bench_seed(n: int, folder: Path) -> dict[str, Any]:
    """The seed's design: the whole task JSON, all outputs included, rewritten per chunk."""
    path = folder / "abc123def456.json"
    outputs: list[str] = []
    written = 0
    start = time.perf_counter()
    for i in range(n):
        outputs.append(f"{i} {CHUNK}")
        now = iso(utcnow())
        doc = {
            "taskId": "abc123def456",
            "progress": {
                "step": "report",
                "percentage": 90,
                "status": "running",
                "messages": [],
                "timestamp": now,
            },
            "outputs": outputs,
            "lastSaved": now,
        }
        data = json.dumps(doc, ensure_ascii=False).encode()
        tmp = folder / ".abc123def456.json.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        written += len(data)
    elapsed = time.perf_counter() - start
    return {
        "events": n,
        "seconds": elapsed,
        "us_per_event": elapsed / n * 1e6,
        "bytes_per_event": written / n,
    }


async def bench_listing(tasks: int, folder: Path) -> dict[str, Any]:
    """`summaries()` over many tasks (heads only) vs parsing every snapshot whole."""
    folder.mkdir()
    for i in range(tasks):
        state = TaskState(task_id=f"{i:032x}", request={"query": f"question {i}"})
        state.outputs = [CHUNK * 25] * 8  # ~16 KB of report per task
        (folder / f"{state.task_id}.json").write_bytes(
            encode_snapshot(*snapshot_parts(state, utcnow()))
        )
    store = FileTaskStore(folder)
    start = time.perf_counter()
    rows = await store.summaries()
    heads = time.perf_counter() - start
    start = time.perf_counter()
    for path in folder.glob("*.json"):
        json.loads(path.read_bytes())
    whole = time.perf_counter() - start
    assert len(rows) == tasks
    return {"tasks": tasks, "summaries_seconds": heads, "parse_every_file_seconds": whole}


def table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain text table."""
    widths = [max(len(c), 12) for c in columns]
    lines = [title, "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    for row in rows:
        cells = []
        for c, w in zip(columns, widths, strict=True):
            value = row.get(c, "")
            cells.append((f"{value:,.1f}" if isinstance(value, float) else f"{value:,}").rjust(w))
        lines.append("  ".join(cells))
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 100k and 10k-task runs")
    args = parser.parse_args()
    ours_sizes = [1_000, 50_000] if args.quick else [1_000, 50_000, 100_000]
    seed_sizes = [1_000, 10_000]
    results: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
        base = Path(tmp)

        def ours_run(n: int) -> Callable[[int], Awaitable[dict[str, Any]]]:
            return lambda i: bench_ours(n, base / f"ours-{n}-{i}")

        ours = [await median_of(REPEATS, ours_run(n)) for n in [*ours_sizes, 10_000]]
        seed = []
        for n in seed_sizes:
            (base / f"seed-{n}").mkdir()
            seed.append(bench_seed(n, base / f"seed-{n}"))
        listing = await bench_listing(2_000 if args.quick else 10_000, base / "listing")
    by_n = {row["events"]: row for row in ours}
    ratios = {
        "ours_us_per_event_50k_over_1k": by_n[50_000]["us_per_event"] / by_n[1_000]["us_per_event"],
        "ours_bytes_per_event_50k_over_1k": by_n[50_000]["bytes_per_event"]
        / by_n[1_000]["bytes_per_event"],
        "seed_over_ours_us_per_event_at_10k": seed[1]["us_per_event"]
        / by_n[10_000]["us_per_event"],
        "seed_over_ours_bytes_per_event_at_10k": seed[1]["bytes_per_event"]
        / by_n[10_000]["bytes_per_event"],
    }
    results.update(flush_every=FLUSH_EVERY, ours=ours, seed=seed, ratios=ratios, listing=listing)
    cols = ["events", "us_per_event", "bytes_per_event"]
    print(
        table(
            "ours (files store: buffered append, fsync every 100 events; median of 3 runs)",
            sorted(ours, key=lambda r: r["events"]),
            [
                *cols,
                "us_per_event_first_2pct",
                "us_per_event_last_2pct",
                "first_event_ms_after_n_minus_10",
            ],
        )
    )
    print()
    print(table("seed (whole task JSON rewritten atomically per chunk)", seed, cols))
    print()
    for name, value in ratios.items():
        print(f"{name:45s} {value:10.2f}")
    print()
    print(
        f"listing {listing['tasks']:,} tasks: summaries() {listing['summaries_seconds']:.2f} s, "
        f"parsing every snapshot whole {listing['parse_every_file_seconds']:.2f} s"
    )
    out = ROOT / "bench" / "results" / "event_store.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
