"""Recorded research: how long a replayed request takes, and export/import of many tasks.

1. A `replay_only` server answers the example notebook's recorded request (notebooks/recordings)
   over `POST research`: time until the stream ends, for the first request (a new task) and for
   `restart: true` requests (the recording replayed again as a new run).
2. `jupyter deepresearch export` of N completed tasks into a folder, then `import` of that folder
   into an empty store: wall time of each command (Python start-up included).

Run: python bench/bench_replay.py [--tasks N] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, BenchServer, median, percentile, table, write_results

from jupyter_deepresearch.extension.models import ResearchRequest, public_request
from jupyter_deepresearch.extension.store.base import TaskState
from jupyter_deepresearch.extension.store.files import FileTaskStore

RECORDINGS = ROOT / "notebooks" / "recordings"


def recorded_body() -> dict[str, Any]:
    folder = next(p for p in sorted(RECORDINGS.iterdir()) if p.is_dir())
    request: dict[str, Any] = json.loads((folder / "task.json").read_text())["request"]
    return request


def replay_times(workdir: Path, repeats: int) -> list[dict[str, Any]]:
    server = BenchServer(
        workdir / "server",
        workdir / "server" / "tasks",
        settings={"replay_dir": str(RECORDINGS), "replay_only": True},
    ).start()
    body = recorded_body()
    rows = []
    try:
        with server.client(timeout=60) as client:
            first = time.perf_counter()
            response = client.post("research", json=body)
            first_ms = (time.perf_counter() - first) * 1000
            assert response.status_code == 201, response.text
            events = response.text.count("\nid: ") + response.text.startswith("id: ")
            again = []
            for _ in range(repeats):
                start = time.perf_counter()
                client.post("tasks", json={**body, "restart": True}).raise_for_status()
                task_id = response.headers["X-Task-ID"]
                while client.get(f"tasks/{task_id}").json()["status"] != "completed":
                    time.sleep(0.005)
                again.append((time.perf_counter() - start) * 1000)
        rows.append(
            {
                "case": "new task, POST research to stream end",
                "events": events,
                "median_ms": first_ms,
                "p95_ms": first_ms,
            }
        )
        rows.append(
            {
                "case": "restart: true, POST tasks to completed",
                "events": events,
                "median_ms": median(again),
                "p95_ms": percentile(again, 95),
            }
        )
    finally:
        server.stop()
    return rows


async def fill_store(folder: Path, count: int) -> None:
    store = FileTaskStore(folder, flush_interval=3600)
    await store.open()
    owner = getpass.getuser()
    for index in range(count):
        request = ResearchRequest(query=f"Stored question number {index}")
        state = TaskState(task_id=f"{index:032x}", request=public_request(request), owner=owner)
        assert await store.create(state)
        await store.append(state, "status", {"status": "queued"})
        await store.append(state, "status", {"status": "running"})
        for step in range(8):
            await store.append(state, "progress", {"step": "search", "percentage": step * 10})
            await store.append(state, "output", {"text": f"Part {step} of report {index}.\n"})
        await store.append(state, "result", {"report": f"Report {index}", "sources": []})
        await store.append(state, "status", {"status": "completed"})
        await store.save(state)
    await store.close()


def cli_seconds(*args: str) -> float:
    start = time.perf_counter()
    command = [sys.executable, "-m", "jupyter_deepresearch.extension.worker", *args]
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def export_import(workdir: Path, count: int) -> list[dict[str, Any]]:
    asyncio.run(fill_store(workdir / "source", count))
    folder = workdir / "recordings"
    export = cli_seconds("export", "--to", str(folder), f"--storage-dir={workdir / 'source'}")
    imported = cli_seconds("import", str(folder), f"--storage-dir={workdir / 'target'}")
    return [
        {"command": "export", "tasks": count, "seconds": export, "tasks_per_s": count / export},
        {"command": "import", "tasks": count, "seconds": imported, "tasks_per_s": count / imported},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dr-bench-replay-") as tmp:
        replay = replay_times(Path(tmp), args.repeats)
        files = export_import(Path(tmp), args.tasks)
    print(
        table(
            "Replay of the example notebook's recording",
            replay,
            ["case", "events", "median_ms", "p95_ms"],
        )
    )
    print()
    print(
        table(
            "Export and import (CLI wall time)",
            files,
            ["command", "tasks", "seconds", "tasks_per_s"],
        )
    )
    write_results("replay", {"replay": replay, "export_import": files})


if __name__ == "__main__":
    main()
