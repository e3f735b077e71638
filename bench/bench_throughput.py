"""1. Event throughput with persistence on, one SSE subscriber, vs a bare tornado SSE handler.

Ours: a real `jupyter server` with the extension (files store, default flush_interval) runs the
scripted pipeline emitting N output events with no delay; one subscriber reads the task's SSE
stream from its first event to its end. Baseline: a bare tornado app in its own process that
streams the same N events, encoded by the same `encode_event`, from memory, one flush per
event as our handler does. Figure: events per second, ours / baseline (target >= 0.5).

Run: python bench/bench_throughput.py [--events N] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    RESULTS,
    BenchServer,
    median,
    print_profile,
    read_sse,
    start_profile,
    table,
    write_results,
)

from jupyter_deepresearch.extension.sse import encode_event, encode_retry


def serve_baseline(port: int) -> None:
    """The baseline server: GET /events?n=N streams N output events from memory."""
    import tornado.ioloop
    import tornado.web

    class Events(tornado.web.RequestHandler):
        async def get(self) -> None:
            n = int(self.get_query_argument("n"))
            self.set_header("Content-Type", "text/event-stream")
            self.set_header("Cache-Control", "no-cache")
            self.write(encode_retry(3000))
            await self.flush()
            events = [(i + 1, "output", {"text": f"Unit 0 line {i + 1}."}) for i in range(n)]
            for event_id, kind, data in events:
                self.write(encode_event(event_id, kind, data))
                await self.flush()
            self.finish()

    class Ready(tornado.web.RequestHandler):
        def get(self) -> None:
            self.write("ok")

    app = tornado.web.Application([(r"/events", Events), (r"/ready", Ready)])
    app.listen(port, "127.0.0.1")
    tornado.ioloop.IOLoop.current().start()


def start_baseline() -> tuple[subprocess.Popen[bytes], int]:
    from dr_testing.servers import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--baseline-server", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                return process, port
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("baseline server did not start")


async def run_ours(server: BenchServer, events: int, round_: int) -> dict[str, Any]:
    import httpx

    query = f"throughput-{round_} units=1 delay=0 outputs={events}"
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as client:
        posted = time.perf_counter()
        created = await client.post("tasks", json={"query": query})
        task_id = created.json()["task_id"]
    path = f"/api/deepresearch/tasks/{task_id}/events"
    seen = await read_sse(server.port, path, server.auth)
    assert seen.status == 200 and seen.in_order and seen.first_id == 1, vars(seen)
    outputs = seen.count
    assert outputs >= events, (outputs, events)
    return {
        "events": seen.count,
        "seconds_stream": seen.ended_at - seen.started_at,
        "seconds_post_to_end": seen.ended_at - posted,
        "events_per_s": seen.count / (seen.ended_at - posted),
    }


async def run_baseline(port: int, events: int) -> dict[str, Any]:
    seen = await read_sse(port, f"/events?n={events}")
    assert seen.status == 200 and seen.in_order and seen.count == events, vars(seen)
    seconds = seen.ended_at - seen.started_at
    return {"events": seen.count, "seconds_stream": seconds, "events_per_s": seen.count / seconds}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        base = Path(tmp)
        server = BenchServer(base / "srv", base / "tasks", settings={"pipeline": PIPELINE})
        server.start()
        baseline, port = start_baseline()
        ours_runs, base_runs = [], []
        try:
            await run_baseline(port, 200)  # warm both up
            await run_ours(server, 200, -1)
            for round_ in range(args.repeats):
                # Interleaved, so a noisy neighbour hurts both sides alike.
                base_runs.append(await run_baseline(port, args.events))
                ours_runs.append(await run_ours(server, args.events, round_))
            if args.profile:
                out = RESULTS / "throughput-profile.txt"
                assert server.process is not None
                profiler = start_profile(server.process.pid, out, 4)
                await asyncio.sleep(0.5)
                await run_ours(server, args.events, 999)
                profiler.wait()
                print_profile(out)
        finally:
            baseline.kill()
            baseline.wait()
            server.stop()
    ours = median([r["events_per_s"] for r in ours_runs])
    bare = median([r["events_per_s"] for r in base_runs])
    return {
        "events": args.events,
        "repeats": args.repeats,
        "ours": ours_runs,
        "baseline": base_runs,
        "ours_events_per_s": ours,
        "baseline_events_per_s": bare,
        "ratio": ours / bare,
        "target": ">= 0.5",
        "met": ours / bare >= 0.5,
    }


PIPELINE = "dr_testing.pipelines:stepped"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Long enough (a few seconds a run) that a neighbour's burst on a shared machine averages out.
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="py-spy one extra run of ours")
    parser.add_argument("--baseline-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        serve_baseline(args.baseline_server)
        return
    results = asyncio.run(main_async(args))
    rows = [
        {"side": "baseline (bare tornado, memory)", "events/s": results["baseline_events_per_s"]},
        {"side": "ours (server + files store)", "events/s": results["ours_events_per_s"]},
    ]
    print(table(f"1. throughput, {args.events:,} events, 1 subscriber", rows, ["side", "events/s"]))
    print(f"ratio ours/baseline = {results['ratio']:.2f} (target >= 0.5)")
    write_results("throughput", results)
    print(json.dumps({"ratio": results["ratio"]}))


if __name__ == "__main__":
    main()
