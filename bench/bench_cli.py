"""The command line's own cost: `jupyter deepresearch list/show` reading a store directly.

Writes N completed tasks (fsync skipped while generating) and times whole subprocesses, as a
user or a cron job pays them: interpreter start, imports, reading the store (read-only: every
snapshot head is read each time, since a read-only run saves no listing cache), printing.
For context, the same `list` with the listing cache a server leaves in the folder, and
`--help` (the start-up floor of a `jupyter` command).

Run: python bench/bench_cli.py [--tasks N] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import median, no_fsync, table, write_completed_task, write_results

from jupyter_deepresearch.extension.store.files import FileTaskStore

SCRIPT = str(Path(sys.executable).with_name("jupyter-deepresearch"))


async def prepare(folder: Path, tasks: int) -> list[str]:
    store = FileTaskStore(folder, flush_interval=3600)
    await store.open()
    ids = [f"{i:032x}" for i in range(tasks)]
    with no_fsync():
        for task_id in ids:
            await write_completed_task(store, task_id, 20, "bench")
        await store.flush()
    await store.close()
    return ids


async def leave_listing_cache(folder: Path) -> None:
    store = FileTaskStore(folder)  # an ordinary store saves `.cache/listing` on close
    await store.open()
    await store.summaries()
    await store.close()


def seconds(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([SCRIPT, *args], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tasks"
        ids = asyncio.run(prepare(folder, options.tasks))
        at = f"--storage-dir={folder}"
        rows = [
            {"command": "--help", "s": seconds(["--help"], options.repeats)},
            {
                "command": "list --limit 20",
                "s": seconds(["list", "--limit=20", at], options.repeats),
            },
            {"command": "list (all)", "s": seconds(["list", at], options.repeats)},
            {"command": "show", "s": seconds(["show", ids[-1], at], options.repeats)},
        ]
        asyncio.run(leave_listing_cache(folder))
        cached = seconds(["list", "--limit=20", at], options.repeats)
        rows.append({"command": "list --limit 20, listing cache", "s": cached})
    print(
        table(
            f"jupyter deepresearch, {options.tasks} stored tasks (median s)", rows, ["command", "s"]
        )
    )
    write_results("cli", {"tasks": options.tasks, "repeats": options.repeats, "rows": rows})


if __name__ == "__main__":
    main()
