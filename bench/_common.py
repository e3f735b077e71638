"""Shared helpers of the benchmark scripts: servers, a lean SSE client, statistics, output."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
for _path in (ROOT / "tests", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


from dr_testing.servers import ServerProcess  # noqa: E402

SCRIPTED = {"pipeline": "dr_testing.pipelines:stepped"}
_ID_LINE = re.compile(rb"^id: (\d+)$", re.MULTILINE)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


def raise_fd_limit(wanted: int = 16384) -> int:
    """Raise the soft open-files limit (children inherit it); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class BenchServer(ServerProcess):
    """`ServerProcess` that polls for readiness finely (start-up time is a measured figure)."""

    ready_seconds: float = 0.0
    listening_seconds: float = 0.0  # until jupyter's own `GET /api` answers
    profile_to: Path | None = None  # set to sample the server with py-spy from its spawn on
    profile_seconds: float = 10.0
    profiler: Any = None

    def start(self, timeout: float = 120.0) -> BenchServer:
        self._spawned = time.perf_counter()
        super().start(timeout)
        self.ready_seconds = time.perf_counter() - self._spawned
        return self

    def wait_ready(self, timeout: float) -> None:
        import httpx

        if self.profile_to is not None and self.process is not None:
            self.profiler = start_profile(self.process.pid, self.profile_to, self.profile_seconds)
        deadline = time.monotonic() + timeout
        root = f"http://127.0.0.1:{self.port}/api"
        with self.client(timeout=60) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
                try:
                    if not self.listening_seconds:
                        if client.get(root).status_code != 200:
                            continue
                        self.listening_seconds = time.perf_counter() - self._spawned
                    if client.get("health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.01)
        raise RuntimeError(f"{self.name} not ready within {timeout}s:\n{self.log()}")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}


class StreamResult:
    """What one SSE subscriber saw: how many events, whether their ids were consecutive."""

    def __init__(self) -> None:
        self.status = 0
        self.count = 0
        self.first_id = 0
        self.last_id = 0
        self.in_order = True
        self.started_at = 0.0
        self.first_event_at: float | None = None
        self.ended_at = 0.0
        self.reconnects = 0

    @property
    def time_to_first_event(self) -> float:
        return (self.first_event_at or self.ended_at) - self.started_at


async def read_sse(
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    stop_after: int | None = None,
    method: str = "GET",
    body: bytes = b"",
    reconnects: int = 5,
) -> StreamResult:
    """One SSE subscriber on raw asyncio streams: decode chunked SSE, check event ids.

    Lean on purpose: a thousand of these run in one process beside the server under test. A
    connection the peer resets is resumed as a browser would, with `Last-Event-ID`.
    """
    result = StreamResult()
    result.started_at = time.perf_counter()
    for attempt in range(reconnects + 1):
        extra = dict(headers or {})
        if result.count:
            extra["Last-Event-ID"] = str(result.last_id)
        try:
            done = await _read_sse_once(port, path, extra, result, stop_after, method, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            if attempt == reconnects:
                raise
            result.reconnects += 1
            await asyncio.sleep(0.05 * (attempt + 1))
            continue
        if done:
            break
    result.ended_at = time.perf_counter()
    return result


async def _read_sse_once(
    port: int,
    path: str,
    headers: dict[str, str],
    result: StreamResult,
    stop_after: int | None,
    method: str,
    body: bytes,
) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if not result.status or status != 204:
            result.status = status
        if status != 200 or b"transfer-encoding: chunked" not in head.lower():
            return True
        pending = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                return True
            pending += (await reader.readexactly(size + 2))[:-2]
            cut = pending.rfind(b"\n\n")
            if cut < 0:
                continue
            found = _ID_LINE.findall(pending, 0, cut + 2)
            pending = pending[cut + 2 :]
            if not found:
                continue
            if result.first_event_at is None:
                result.first_event_at = time.perf_counter()
                result.first_id = int(found[0])
                result.last_id = result.first_id - 1
            for raw in found:
                value = int(raw)
                if value != result.last_id + 1:
                    result.in_order = False
                result.last_id = value
            result.count += len(found)
            if stop_after is not None and result.last_id >= stop_after:
                return True
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (psutil when present, else /proc)."""
    try:
        import psutil

        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except ImportError:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    return float("nan")


def table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain text table for the terminal."""
    widths = [max(len(c), *(len(_fmt(r.get(c, ""))) for r in rows)) for c in columns]
    out = [title, "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    for row in rows:
        out.append(
            "  ".join(_fmt(row.get(c, "")).rjust(w) for c, w in zip(columns, widths, strict=True))
        )
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_results(name: str, data: dict[str, Any]) -> Path:
    """bench/results/{name}.json with the machine's facts beside the figures."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "bench": name,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **data,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path


async def write_completed_task(store: Any, task_id: str, outputs: int, owner: str) -> None:
    """Record a completed task of `outputs` output events straight through `FileTaskStore`."""
    from jupyter_deepresearch.extension.models import Status
    from jupyter_deepresearch.extension.store.base import TaskState

    state = TaskState(task_id=task_id, request={"query": f"stored {task_id}"}, owner=owner)
    assert await store.create(state)
    await store.append(state, "status", {"status": Status.queued.value})
    state.attempts = 1
    await store.append(state, "status", {"status": Status.running.value})
    for i in range(outputs):
        await store.append(state, "output", {"text": f"Line {i} of a stored report, as written."})
        if i % 5000 == 4999:
            await store.flush()
    report = {"report": f"# Stored report {task_id}", "sources": []}
    await store.append(state, "result", report)
    await store.flush()
    await store.append(state, "status", {"status": Status.completed.value})
    await store.save(state, durable=True)


class no_fsync:
    """Skip fsync while generating bench data (durability of fixtures is not measured)."""

    def __enter__(self) -> None:
        self._real = os.fsync
        os.fsync = lambda fd: None

    def __exit__(self, *exc: object) -> None:
        os.fsync = self._real


def start_profile(pid: int, out: Path, seconds: float) -> Any:
    """Sample a process with py-spy (all threads, idle frames dropped) as collapsed stacks."""
    import shutil
    import subprocess

    if shutil.which("py-spy") is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
    command += ["--function"]  # aggregate by function, not by line
    command += ["--duration", str(int(seconds)), "--output", str(out), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_frames(
    collapsed: Path, limit: int = 15, within: str = ""
) -> list[tuple[str, float, float]]:
    """(frame, self %, inclusive %) from py-spy's collapsed stacks, busiest first by self time.

    With `within`, only samples whose stack contains that text count (e.g. "deepresearch").
    """
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or (within and within not in stack):
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + count
        for frame in set(frames):
            incl[frame] = incl.get(frame, 0) + count
    rows = [(f, 100 * n / total, 100 * incl[f] / total) for f, n in own.items()] if total else []
    rows.sort(key=lambda r: r[1], reverse=True)
    return rows[:limit]


OUR_FILES = (
    "_folder.py",
    "files.py",
    "manager.py",
    "_recovery.py",
    "seed_format.py",
    "codec.py",
    "handlers.py",
    "events.py",
    "_journal.py",
    "sse.py",
    "_atomic.py",
    "app.py",
    "base.py",
    "models.py",
    "lifecycle.py",
)


def print_profile(collapsed: Path, limit: int = 12) -> None:
    """The busiest frames by self time, then our own functions by inclusive time."""
    rows = top_frames(collapsed, 10_000)
    print(f"\nprofile {collapsed.name}: self %, inclusive % of busy samples")
    for frame, self_pct, incl_pct in rows[:limit]:
        print(f"  {self_pct:5.1f} {incl_pct:5.1f}  {frame}")
    inclusive = _inclusive(collapsed)
    print("  our functions by inclusive %:")
    for frame, pct in inclusive[:limit]:
        print(f"        {pct:5.1f}  {frame}")


def _inclusive(collapsed: Path) -> list[tuple[str, float]]:
    incl: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        for frame in set(stack.split(";")):
            if any(f"({name}:" in frame for name in OUR_FILES):
                incl[frame] = incl.get(frame, 0) + count
    rows = [(f, 100 * n / total) for f, n in incl.items()] if total else []
    return sorted(rows, key=lambda r: r[1], reverse=True)
