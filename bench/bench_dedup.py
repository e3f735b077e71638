"""6. Dedup under contention: 200 concurrent identical POSTs vs 200 concurrent plain GETs.

Each round sends 200 identical `POST tasks` bodies at once (a fresh query per round) on 200
connections; exactly one must create the task (201) and the other 199 attach to it (200, same
task id). The baseline is 200 concurrent `GET tasks/{id}` on the same server in the same run.
Figures: p50 and p99 latency of each, and POST over GET.

Run: python bench/bench_dedup.py [--concurrency N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    SCRIPTED,
    BenchServer,
    median,
    percentile,
    raise_fd_limit,
    table,
    write_results,
)


async def request(port: int, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
    """One request on its own connection; (status, body, seconds). Raw, to time only the server."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    payload = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    await asyncio.sleep(0)
    started = time.perf_counter()
    writer.write(payload)
    raw = await reader.read()
    elapsed = time.perf_counter() - started
    writer.close()
    head, _, content = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        content = _unchunk(content)
    return status, content, elapsed


def _unchunk(data: bytes) -> bytes:
    out, pos = b"", 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end], 16)
        if size == 0:
            return out
        out += data[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


async def burst(server: BenchServer, n: int, method: str, path: str, body: bytes) -> list[Any]:
    barrier = asyncio.Event()

    async def one() -> Any:
        await barrier.wait()
        return await request(server.port, method, path, server.auth, body)

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    await asyncio.sleep(0.05)
    barrier.set()
    return await asyncio.gather(*tasks)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit(4 * args.concurrency + 1024)
    posts: list[float] = []
    gets: list[float] = []
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        base = Path(tmp)
        server = BenchServer(base / "srv", base / "tasks", settings=SCRIPTED).start()
        try:
            for r in range(args.rounds + 1):  # round 0 warms up
                body = json.dumps({"query": f"dedup round {r} units=2 delay=0.05"}).encode()
                replies = await burst(
                    server, args.concurrency, "POST", "/api/deepresearch/tasks", body
                )
                statuses = sorted(s for s, _, _ in replies)
                ids = {json.loads(content)["task_id"] for _, content, _ in replies}
                assert statuses == [200] * (args.concurrency - 1) + [201], statuses
                assert len(ids) == 1, ids
                task_id = ids.pop()
                got = await burst(
                    server, args.concurrency, "GET", f"/api/deepresearch/tasks/{task_id}", b""
                )
                assert all(s == 200 for s, _, _ in got)
                post_times = [t for _, _, t in replies]
                get_times = [t for _, _, t in got]
                if r == 0:
                    continue
                posts += post_times
                gets += get_times
                rounds.append(
                    {
                        "post_p50_ms": percentile(post_times, 50) * 1e3,
                        "post_p99_ms": percentile(post_times, 99) * 1e3,
                        "get_p50_ms": percentile(get_times, 50) * 1e3,
                        "get_p99_ms": percentile(get_times, 99) * 1e3,
                    }
                )
            tasks = (
                await request(server.port, "GET", "/api/deepresearch/tasks", server.auth, b"")
            )[1]
            assert len(json.loads(tasks)["tasks"]) == args.rounds + 1  # one task per round
        finally:
            server.stop()
    med = {key: median([r[key] for r in rounds]) for key in rounds[0]}
    return {
        "concurrency": args.concurrency,
        "rounds": rounds,
        "medians": med,
        "ratio_p50_post_over_get": med["post_p50_ms"] / med["get_p50_ms"],
        "ratio_p99_post_over_get": med["post_p99_ms"] / med["get_p99_ms"],
        "one_task_per_round": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    med = results["medians"]
    rows = [
        {
            "request": "POST tasks (identical)",
            "p50 ms": med["post_p50_ms"],
            "p99 ms": med["post_p99_ms"],
        },
        {"request": "GET tasks/{id}", "p50 ms": med["get_p50_ms"], "p99 ms": med["get_p99_ms"]},
    ]
    title = f"6. dedup: {args.concurrency} concurrent requests, median of {args.rounds} rounds"
    print(table(title, rows, ["request", "p50 ms", "p99 ms"]))
    print(
        f"POST/GET p50 = {results['ratio_p50_post_over_get']:.2f}, "
        f"p99 = {results['ratio_p99_post_over_get']:.2f}; one task, one 201 per round"
    )
    write_results("dedup", results)


if __name__ == "__main__":
    main()
