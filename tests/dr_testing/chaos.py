"""The chaos fleet: two real servers and a headless worker on one store (files, or a real Redis
that is itself restarted), the faults done to them, and a log of every action.

A fault is one of: SIGKILL a process (then start it again after a while), SIGSTOP it for a
while then SIGCONT (shorter or longer than the lease), or restart Redis (SIGTERM or SIGKILL;
it runs with `appendonly yes` and `appendfsync always`, as the README advises). Processes
persist across faults: only what was killed is started again. Clients ask `endpoints()` for the
servers that answer now (neither killed nor frozen).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dr_testing.redis_server import RedisProcess
from dr_testing.servers import ServerProcess
from dr_testing.worker import WorkerProcess

FREEZE_SHORT = (0.05, 0.5)  # times the lease: it is renewed every third, so it survives
FREEZE_LONG = (1.25, 2.5)  # times the lease: another process takes the task over meanwhile


class ChaosServer(ServerProcess):
    """A server that counts as started once it answers, even 503 while Redis is down (a server
    restarted during an outage serves 503 until the store is back, as it should)."""

    ready_codes = frozenset({200, 503})


class ChaosLog:
    """Timestamped lines of what was done, kept in memory and appended to a file as they come
    (so a run stopped by pytest-timeout still leaves its actions behind)."""

    def __init__(self, path: Path, header: str) -> None:
        self.path = path
        self.started = time.monotonic()
        self.lines: list[str] = []
        self._lock = threading.Lock()
        path.write_text(header + "\n")
        self.lines.append(header)

    def __call__(self, text: str) -> None:
        line = f"{time.monotonic() - self.started:8.2f}s {text}"
        with self._lock:
            self.lines.append(line)
            with self.path.open("a") as f:
                f.write(line + "\n")

    def tail(self, count: int = 120) -> str:
        with self._lock:
            lines = self.lines[:1] + self.lines[1:][-count:]
        return "\n".join(lines)


@dataclass(frozen=True)
class Endpoint:
    """How a client reaches one server as it is now (a restarted server has a new port)."""

    name: str
    url: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}


@dataclass
class Fault:
    kind: str  # "kill", "freeze", "redis"
    target: str  # "s0", "s1", "worker", "redis"
    hold: float  # seconds between the fault and its end (restart, SIGCONT)
    deferred: bool = False  # its end waits for the next fault's: two faults overlap

    def describe(self, lease: float) -> str:
        if self.kind == "freeze":
            length = "long" if self.hold > lease else "short"
            return f"SIGSTOP {self.target} for {self.hold:.2f}s ({length})"
        what = "SIGKILL" if self.kind == "kill" else "restart"
        return f"{what} {self.target}, down {self.hold:.2f}s"


class Fleet:
    """Two servers and a worker on one store; `begin`/`end` a fault, `stop` everything."""

    def __init__(
        self,
        workdir: Path,
        storage: Path,
        settings: dict[str, Any],
        log: ChaosLog,
        *,
        redis: RedisProcess | None = None,
    ) -> None:
        self.settings = settings
        self.log = log
        self.redis = redis
        self.lease = float(settings["lease_seconds"])
        self.servers = {
            name: ChaosServer(workdir / name, storage, settings=settings, name=name)
            for name in ("s0", "s1")
        }
        worker_args = [f"--DeepResearchApp.storage_dir={storage}"]
        worker_args += [f"--DeepResearchApp.{key}={value}" for key, value in settings.items()]
        self.worker = WorkerProcess(workdir / "worker", worker_args)
        self.down: set[str] = set()  # killed and not started again yet, or starting
        self.frozen: set[str] = set()
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    # ------------------------------------------------------------ life cycle

    def start(self) -> Fleet:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda server: server.start(), self.servers.values()))
        self.worker.start()
        self.log(
            f"started s0 (pid {self.pid('s0')}), s1 (pid {self.pid('s1')}), "
            f"worker (pid {self.pid('worker')})"
        )
        return self

    def stop(self) -> None:
        """Wake what is frozen, then stop every process (SIGTERM, SIGKILL if it hangs)."""
        for name in list(self.frozen):
            self._signal(name, signal.SIGCONT)
        self.frozen.clear()
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda server: server.stop(), self.servers.values()))
            self.worker.stop()
        if self.redis is not None:
            self.redis.stop()

    def logs(self) -> str:
        """Everything the servers and the worker logged, across their restarts."""
        return "\n".join([*(server.log() for server in self.servers.values()), self.worker.log()])

    def pid(self, name: str) -> int | None:
        process = self._process(name)
        return process.pid if process is not None else None

    def _process(self, name: str) -> Any:
        if name == "worker":
            return self.worker.process
        if name == "redis":
            return self.redis.process if self.redis else None
        return self.servers[name].process

    def _signal(self, name: str, sig: signal.Signals) -> None:
        pid = self.pid(name)
        if pid is not None:
            os.kill(pid, sig)

    # ------------------------------------------------------------ what clients see

    def endpoints(self) -> list[Endpoint]:
        """The servers that answer now."""
        with self._lock:
            return [
                Endpoint(name, server.url, server.token)
                for name, server in self.servers.items()
                if name not in self.down and name not in self.frozen
            ]

    def faulted(self) -> set[str]:
        with self._lock:
            return self.down | self.frozen

    # ------------------------------------------------------------ faults

    def choose(self, rng: random.Random, *, busy: set[str]) -> Fault | None:
        """A random fault on a process that is not already faulted (None if all are)."""
        targets = [name for name in ("s0", "s1", "worker") if name not in busy]
        if self.redis is not None and "redis" not in busy:
            targets.append("redis")
        if not targets:
            return None
        target = rng.choice(targets)
        if target == "redis":
            return Fault("redis", target, rng.uniform(0.1, 2.0))
        roll = rng.random()
        if roll < 0.4:
            return Fault("kill", target, rng.uniform(0.0, 1.5))
        low, high = FREEZE_SHORT if roll < 0.7 else FREEZE_LONG
        return Fault("freeze", target, self.lease * rng.uniform(low, high))

    def begin(self, fault: Fault, rng: random.Random) -> None:
        name = fault.target
        pid = self.pid(name)
        if fault.kind == "freeze":
            with self._lock:
                self.frozen.add(name)
            self._signal(name, signal.SIGSTOP)
            length = "long" if fault.hold > self.lease else "short"
            self.counts[f"freeze {length}"] += 1
        elif fault.kind == "kill":
            with self._lock:
                self.down.add(name)
            self._process(name).kill()
            self._process(name).wait(10)
            self.counts["kill " + ("worker" if name == "worker" else "server")] += 1
        else:
            assert self.redis is not None
            graceful = rng.random() < 0.5
            with self._lock:
                self.down.add(name)
            if graceful:
                self.redis.stop()
            else:
                self.redis.process.kill()  # type: ignore[union-attr]
                self.redis.process.wait(10)  # type: ignore[union-attr]
            self.counts["redis " + ("stop" if graceful else "kill")] += 1
        overlaps = " [overlaps the next]" if fault.deferred else ""
        self.log(f"{fault.describe(self.lease)} (pid {pid}){overlaps}")

    def end(self, fault: Fault) -> None:
        name = fault.target
        if fault.kind == "freeze":
            self._signal(name, signal.SIGCONT)
            with self._lock:
                self.frozen.discard(name)
            self.log(f"SIGCONT {name}")
            return
        self._restart(name)

    def _restart(self, name: str) -> None:
        if name == "redis":
            assert self.redis is not None
            old = self.redis
            self.redis = RedisProcess(old.workdir, port=old.port, appendonly=True).start()
        elif name == "worker":
            self.worker.start()
        else:
            self.servers[name].start()
        with self._lock:
            self.down.discard(name)
        self.log(f"started {name} again (pid {self.pid(name)})")
