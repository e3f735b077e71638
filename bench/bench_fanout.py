"""3. Fan-out: 1, 100 and 1,000 concurrent SSE subscribers on one task.

A real server runs the scripted pipeline emitting E output events with no delay; right after
the POST, N subscribers (raw asyncio streams on loopback, open-files limit raised) read the
task's stream from its first event. Every subscriber must get every event, in order. Figure:
delivered events per second (all subscribers together), and that rate relative to the rate
with one subscriber, measured in the same run.

Run: python bench/bench_fanout.py [--events E] [--levels 1,100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import (
    RESULTS,
    SCRIPTED,
    BenchServer,
    median,
    print_profile,
    raise_fd_limit,
    read_sse,
    table,
    write_results,
)


async def one_round(server: BenchServer, subscribers: int, events: int, tag: str) -> dict[str, Any]:
    query = f"fanout-{tag} units=1 delay=0 outputs={events}"
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=120) as client:
        task_id = (await client.post("tasks", json={"query": query})).json()["task_id"]
        path = f"/api/deepresearch/tasks/{task_id}/events"
        started = time.perf_counter()
        seen = await asyncio.gather(
            *(read_sse(server.port, path, server.auth) for _ in range(subscribers))
        )
        wall = time.perf_counter() - started
        last = (await client.get(f"tasks/{task_id}")).json()["last_event_id"]
    bad = [s for s in seen if s.status != 200 or not s.in_order or s.first_id != 1]
    short = [s for s in seen if s.last_id != last or s.count != last]
    assert not bad and not short, (len(bad), len(short), last)
    delivered = sum(s.count for s in seen)
    return {
        "subscribers": subscribers,
        "events_per_subscriber": last,
        "delivered": delivered,
        "seconds": wall,
        "delivered_per_s": delivered / wall,
        "slowest_subscriber_s": max(s.ended_at - s.started_at for s in seen),
        "reconnects": sum(s.reconnects for s in seen),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    limit = raise_fd_limit(4 * max(args.levels) + 1024)
    rounds: dict[int, list[dict[str, Any]]] = {n: [] for n in args.levels}
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        base = Path(tmp)
        server = BenchServer(base / "srv", base / "tasks", settings=SCRIPTED)
        server.start()
        try:
            await one_round(server, 2, 100, "warm-up")
            for repeat in range(args.repeats):
                for n in args.levels:
                    if n >= 1000 and repeat >= max(1, args.repeats - 1):
                        continue  # the biggest level is slow: fewer samples
                    rounds[n].append(await one_round(server, n, args.events, f"{n}-{repeat}"))
            if args.profile:
                out = RESULTS / "fanout-profile.txt"
                from _common import start_profile

                profiler = start_profile(server.process.pid, out, 12)
                await asyncio.sleep(1.0)
                await one_round(server, max(args.levels), args.events, "profiled")
                profiler.wait()
                print_profile(out)
        finally:
            server.stop()
    med = {n: median([r["delivered_per_s"] for r in rows]) for n, rows in rounds.items()}
    one = med[min(args.levels)]
    return {
        "events": args.events,
        "fd_limit": limit,
        "rounds": {str(n): rows for n, rows in rounds.items()},
        "delivered_per_s": {str(n): v for n, v in med.items()},
        "ratio_vs_one_subscriber": {str(n): v / one for n, v in med.items()},
        "all_in_order": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--levels", default="1,100,1000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    args.levels = [int(x) for x in args.levels.split(",")]
    results = asyncio.run(main_async(args))
    rows = []
    for n in args.levels:
        runs = results["rounds"][str(n)]
        rows.append(
            {
                "subscribers": n,
                "events each": runs[0]["events_per_subscriber"],
                "delivered/s": results["delivered_per_s"][str(n)],
                "vs 1 subscriber": results["ratio_vs_one_subscriber"][str(n)],
                "slowest stream s": median([r["slowest_subscriber_s"] for r in runs]),
                "reconnects": sum(r["reconnects"] for r in runs),
            }
        )
    cols = ["subscribers", "events each", "delivered/s", "vs 1 subscriber", "slowest stream s"]
    cols.append("reconnects")
    print(table("3. fan-out: every subscriber got every event in order", rows, cols))
    write_results("fanout", results)


if __name__ == "__main__":
    main()
