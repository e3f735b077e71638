"""4. Reattach: time to first event and full replay rate, 100-event vs 100k-event tasks.

Two completed tasks are written straight through `FileTaskStore`; a real server serves them.
Per task: a reattach near the end (`Last-Event-ID: N-10`), cold (first request after a server
start: the task is loaded from disk) and warm (cached); a replay from the start (time to the
first event, and events per second over the whole stream). Figure: first-event time of the
100k task over the 100-event task (target <= 2).

Run: python bench/bench_reattach.py [--big N] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    SCRIPTED,
    BenchServer,
    median,
    no_fsync,
    read_sse,
    table,
    write_completed_task,
    write_results,
)

from jupyter_deepresearch.extension.store.files import FileTaskStore

SMALL_ID = "0" * 31 + "1"
BIG_ID = "0" * 31 + "2"


async def prepare(folder: Path, small: int, big: int) -> dict[str, int]:
    store = FileTaskStore(folder, flush_interval=3600)
    await store.open()
    with no_fsync():
        await write_completed_task(store, SMALL_ID, small, getpass.getuser())
        await write_completed_task(store, BIG_ID, big, getpass.getuser())
    last = {}
    for task_id in (SMALL_ID, BIG_ID):
        state = await store.load(task_id)
        assert state is not None
        last[task_id] = state.last_event_id
    await store.close()
    return last


async def first_event(server: BenchServer, task_id: str, after: int) -> float:
    headers = {**server.auth, "Last-Event-ID": str(after)}
    seen = await read_sse(server.port, f"/api/deepresearch/tasks/{task_id}/events", headers)
    assert seen.status == 200 and seen.in_order and seen.first_id == after + 1, vars(seen)
    return seen.time_to_first_event


async def replay(server: BenchServer, task_id: str, last: int) -> tuple[float, float]:
    seen = await read_sse(server.port, f"/api/deepresearch/tasks/{task_id}/events", server.auth)
    assert seen.status == 200 and seen.in_order and seen.first_id == 1, vars(seen)
    assert seen.last_id == last, (seen.last_id, last)
    return seen.time_to_first_event, seen.count / (seen.ended_at - seen.started_at)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    samples: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    with tempfile.TemporaryDirectory(prefix="bench-reattach-") as tmp:
        base = Path(tmp)
        folder = base / "tasks"
        started = time.perf_counter()
        last = await prepare(folder, args.small, args.big)
        print(f"prepared tasks in {time.perf_counter() - started:.1f}s: {last}")
        for cold in range(args.cold):
            server = BenchServer(base / f"srv{cold}", folder, settings=SCRIPTED).start()
            try:
                # Alternate which task goes first, so neither always pays for a cold disk.
                order = [("small", SMALL_ID), ("big", BIG_ID)]
                for name, task_id in order if cold % 2 else order[::-1]:
                    add(
                        f"{name}_cold_reattach_s",
                        await first_event(server, task_id, last[task_id] - 10),
                    )
                if cold:
                    continue
                for _ in range(args.repeats):
                    for name, task_id in (("small", SMALL_ID), ("big", BIG_ID)):
                        add(
                            f"{name}_warm_reattach_s",
                            await first_event(server, task_id, last[task_id] - 10),
                        )
                        first, rate = await replay(server, task_id, last[task_id])
                        add(f"{name}_replay_first_s", first)
                        add(f"{name}_replay_events_per_s", rate)
            finally:
                server.stop()
    med = {name: median(values) for name, values in samples.items()}
    ratios = {
        "warm_reattach_first_event_big_over_small": med["big_warm_reattach_s"]
        / med["small_warm_reattach_s"],
        "cold_reattach_first_event_big_over_small": med["big_cold_reattach_s"]
        / med["small_cold_reattach_s"],
        "replay_first_event_big_over_small": med["big_replay_first_s"]
        / med["small_replay_first_s"],
        "replay_rate_big_over_small": med["big_replay_events_per_s"]
        / med["small_replay_events_per_s"],
    }
    return {
        "small_events": last[SMALL_ID],
        "big_events": last[BIG_ID],
        "samples": samples,
        "medians": med,
        "ratios": ratios,
        "target": "first-event ratio <= 2",
        "met": {name: value <= 2 for name, value in ratios.items() if "first_event" in name},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cold", type=int, default=4, help="server starts for cold samples")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    med = results["medians"]
    rows = []
    for label, key in (
        ("reattach near end, cold: first event ms", "cold_reattach_s"),
        ("reattach near end, warm: first event ms", "warm_reattach_s"),
        ("replay from start: first event ms", "replay_first_s"),
    ):
        rows.append(
            {
                "measure": label,
                "small": med[f"small_{key}"] * 1e3,
                "big": med[f"big_{key}"] * 1e3,
            }
        )
    rows.append(
        {
            "measure": "replay from start: events/s",
            "small": med["small_replay_events_per_s"],
            "big": med["big_replay_events_per_s"],
        }
    )
    title = f"4. reattach, {results['small_events']:,} vs {results['big_events']:,} events"
    print(table(title, rows, ["measure", "small", "big"]))
    for name, value in results["ratios"].items():
        print(f"{name:45s} {value:8.2f}")
    write_results("reattach", results)


if __name__ == "__main__":
    main()
