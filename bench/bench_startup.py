"""5. Start-up time and resident memory with 0 vs 10,000 stored tasks.

The 10,000 completed tasks are written straight through `FileTaskStore` (fsync skipped while
generating). Start-up: from spawning `jupyter server` to the first 200 of `GET health` (which
needs the extension started). Memory: RSS of the server process once ready, and after listing
every task. Figure: start-up with 10k tasks over start-up with none (target <= 1.2), the 10k
folder holding the caches (`.cache/`: listing rows, kept task summaries) that any earlier server
leaves; for context, the same start without them (a first start, or lost files: every head is
read, and every summary for the first full listing).

`--format seed` writes the folder as the seed app did (`{taskId}.json` only, 50 outputs each, no
sidecars), which users bring from the original app. Targets for both formats: start-up <= 1.2
of empty (first start on a folder never seen <= 2), `GET health` and `GET tasks?limit=20`
<= 50 ms, `GET tasks` (summaries of every task) <= 0.5 s. A server reads each task's summary
once (or takes it from the summaries an earlier server kept): the first full listing, asked
right after start, is printed apart from a later one.

Run: python bench/bench_startup.py [--tasks N] [--repeats R] [--format ours|seed]
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    RESULTS,
    SCRIPTED,
    BenchServer,
    median,
    no_fsync,
    print_profile,
    rss_mb,
    table,
    write_results,
)

from jupyter_deepresearch.extension.store._folder import CACHE_FOLDER
from jupyter_deepresearch.extension.store.files import FileTaskStore


async def prepare(folder: Path, tasks: int) -> None:
    from _common import write_completed_task

    store = FileTaskStore(folder, flush_interval=3600)
    await store.open()
    with no_fsync():
        for i in range(tasks):
            await write_completed_task(store, f"{i + 1:032x}", 3, getpass.getuser())
    await store.close()


def prepare_seed(folder: Path, tasks: int) -> None:
    """What the seed app leaves: one JSON per task, its outputs inline, nothing beside it."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(tasks):
        task_id = f"{i + 1:032x}"
        outputs = [
            f"Line {n} of the report of task {i}, as the seed app streamed it." for n in range(50)
        ]
        doc = {
            "taskId": task_id,
            "progress": {
                "step": "report",
                "percentage": 100,
                "status": "completed",
                "messages": ["Searching", "Writing the report"],
                "timestamp": "2025-01-08T11:02:13.517Z",
            },
            "outputs": outputs,
            "lastSaved": "2025-01-08T11:02:13.517Z",
        }
        (folder / f"{task_id}.json").write_text(json.dumps(doc))


def measure(
    base: Path, folder: Path, name: str, profile: Path | None = None, seconds: float = 14
) -> dict[str, Any]:
    server = BenchServer(base / name, folder, settings=SCRIPTED)
    if profile is not None:
        server.profile_to, server.profile_seconds = profile, seconds
    server.start()
    try:
        assert server.process is not None
        ready_rss = rss_mb(server.process.pid)
        with server.client(timeout=120) as client:
            started = time.perf_counter()
            assert client.get("health").status_code == 200
            health_seconds = time.perf_counter() - started
            started = time.perf_counter()
            listed = client.get("tasks")
            list_seconds = time.perf_counter() - started
            assert listed.status_code == 200
            count = len(listed.json()["tasks"])
            # Later listings (a panel refreshing) reuse the summaries read by the first one.
            started = time.perf_counter()
            assert len(client.get("tasks").json()["tasks"]) == count
            list_again_seconds = time.perf_counter() - started
            pages = []
            for _ in range(5):
                started = time.perf_counter()
                client.get("tasks", params={"limit": 20})
                pages.append(time.perf_counter() - started)
            page_seconds = median(pages)
        return {
            "startup_s": server.ready_seconds,
            "listening_s": server.listening_seconds,
            # What the extension's start adds once the server listens, less one health call.
            "extension_start_s": server.ready_seconds - server.listening_seconds - health_seconds,
            "health_s": health_seconds,
            "rss_ready_mb": ready_rss,
            "list_all_s": list_seconds,
            "list_all_again_s": list_again_seconds,
            "list_20_s": page_seconds,
            "rss_after_list_mb": rss_mb(server.process.pid),
            "listed": count,
        }
    finally:
        if server.profiler is not None:
            server.profiler.wait()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--format", choices=["ours", "seed"], default="ours")
    parser.add_argument("--profile", action="store_true", help="py-spy one start with N tasks")
    parser.add_argument("--profile-seconds", type=float, default=14, help="from the spawn on")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"empty": [], "no_cache": [], "full": []}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        base = Path(tmp)
        empty, full = base / "empty", base / "full"
        empty.mkdir()
        started = time.perf_counter()
        if args.format == "seed":
            prepare_seed(full, args.tasks)
        else:
            asyncio.run(prepare(full, args.tasks))
        print(f"wrote {args.tasks:,} tasks in {time.perf_counter() - started:.1f}s")
        for i in range(args.repeats):
            for kind, folder in (("empty", empty), ("no_cache", full), ("full", full)):
                if kind == "no_cache":  # the start after it writes them again: "full"
                    shutil.rmtree(full / CACHE_FOLDER, ignore_errors=True)
                runs[kind].append(measure(base, folder, f"{kind}{i}"))
        if args.profile:
            out = RESULTS / "startup-profile.txt"
            measure(base, full, "profiled", out, args.profile_seconds)
    if args.profile:
        print_profile(out)
    assert all(r["listed"] == args.tasks for r in runs["full"] + runs["no_cache"])
    med = {
        kind: {key: median([r[key] for r in rows]) for key in rows[0]}
        for kind, rows in runs.items()
    }
    ratio = med["full"]["startup_s"] / med["empty"]["startup_s"]
    results = {
        "tasks": args.tasks,
        "format": args.format,
        "runs": runs,
        "medians": med,
        "ratio_startup": ratio,
        "ratio_listening": med["full"]["listening_s"] / med["empty"]["listening_s"],
        "ratio_startup_no_cache": med["no_cache"]["startup_s"] / med["empty"]["startup_s"],
        "ratio_rss_ready": med["full"]["rss_ready_mb"] / med["empty"]["rss_ready_mb"],
        "target": "<= 1.2",
        "met": ratio <= 1.2,
    }
    rows = [
        {"stored tasks": "0", **med["empty"]},
        {"stored tasks": f"{args.tasks:,}", **med["full"]},
        {"stored tasks": f"{args.tasks:,}, no cache files", **med["no_cache"]},
    ]
    cols = ["stored tasks", "listening_s", "startup_s", "extension_start_s", "health_s"]
    cols += ["rss_ready_mb", "list_20_s"]
    print(
        table(
            "5. start-up and memory (median)",
            rows,
            [*cols, "list_all_s", "list_all_again_s", "rss_after_list_mb"],
        )
    )
    print(f"{args.format} format: start-up {args.tasks:,} / 0 = {ratio:.2f} (target <= 1.2)")
    full_med = med["full"]
    print(
        f"GET health {full_med['health_s'] * 1000:.0f} ms, GET tasks?limit=20 "
        f"{full_med['list_20_s'] * 1000:.0f} ms (targets <= 50 ms); every task: "
        f"{full_med['list_all_s']:.2f} s first, {full_med['list_all_again_s']:.2f} s after "
        "(target <= 0.5 s)"
    )
    no_cache = med["no_cache"]
    print(
        f"without the cache files (a first start): start-up {results['ratio_startup_no_cache']:.2f}"
        f" (target <= 2), every task {no_cache['list_all_s']:.2f} s first (context)"
    )
    write_results("startup" if args.format == "ours" else "startup-seed", results)


if __name__ == "__main__":
    main()
