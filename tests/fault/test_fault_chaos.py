"""A seeded chaos run: two servers and a headless worker on one store, random SIGKILL and
SIGSTOP/SIGCONT (and, on Redis, Redis restarts), with submissions and reattaching readers.

Each iteration sends a few requests (identical ones at once to several servers), then does one
fault: SIGKILL a server or the worker and start it again, SIGSTOP one shorter or longer than
the lease then SIGCONT, or restart Redis. Sometimes a fault's end waits for the next one, so two
overlap. Every task gets a reader that follows its stream from whichever server answers,
hanging up at random and reattaching with `Last-Event-ID`. Once every process is back and every
task has ended, the test proves from what the store holds (`dr_testing.chaos_checks`):

- event ids consecutive from 1, none lost or duplicated, and every reader got exactly them;
- one runner per task at a time (the scripted runs' grammar, and `attempts` equal to the
  runner turns logged);
- identical concurrent requests made one task (one 201 at most, every answer the same id);
- every task ended, completed, with the report of an uninterrupted run (the real offline
  pipeline's compared with the same request run on a fresh server).

`DR_CHAOS_ITERATIONS` (default 50) and `DR_CHAOS_SEED` (default fixed; `random` for a new one)
choose the run; `DR_CHAOS_BUDGET` bounds its chaos phase in seconds. A failure prints the seed
and the actions taken (the whole log is in `chaos.log` in the test's tmp folder).
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dr_testing.chaos import ChaosLog, Fault, Fleet
from dr_testing.chaos_checks import (
    check_file_log,
    check_ids,
    check_offline,
    check_reader,
    check_scripted,
    expected_report,
    running_count,
)
from dr_testing.chaos_clients import Reader, Submissions
from dr_testing.cluster import LEASE_SECONDS, all_events, log_of, start_all, stop_all
from dr_testing.cluster import SETTINGS as CLUSTER_SETTINGS
from dr_testing.redis_server import INSTALL_HINT, RedisProcess, redis_binary
from dr_testing.servers import ServerProcess
from dr_testing.waiting import wait_for
from jupyter_deepresearch.extension.tasks.upkeep import MAINTENANCE_SECONDS

ITERATIONS = int(os.environ.get("DR_CHAOS_ITERATIONS", "50"))
_SEED = os.environ.get("DR_CHAOS_SEED", "20250612")
SEED = secrets.randbelow(2**32) if _SEED == "random" else int(_SEED)
# The chaos phase stops early (and says so) past this; the checks still run in full.
BUDGET = float(os.environ.get("DR_CHAOS_BUDGET", str(60 + 12 * ITERATIONS)))
DRAIN_SECONDS = 240.0  # every task ends within this once all faults are over
TIMEOUT = BUDGET + DRAIN_SECONDS + 300

SETTINGS = {
    "pipeline": "dr_testing.chaos_pipeline:mixed",
    "flush_interval": 0.05,
    "lease_seconds": LEASE_SECONDS,
    "max_concurrent_tasks": 3,
}
# Real offline research (extractive writer, local BM25 search), deterministic.
REPORT = {"breadth": 3, "depth": 2}
OFFLINE = [
    "How does asyncio cancel a task?",
    "What does the with statement do?",
    "How are exceptions chained with raise from?",
]


@pytest.fixture(scope="module")
def offline_reference(tmp_path_factory: pytest.TempPathFactory, search_cache_dir: Path) -> Any:
    """Each offline request run uninterrupted on a fresh server: query -> result."""
    workdir = tmp_path_factory.mktemp("chaos-reference")
    settings = {**SETTINGS, "cache_dir": str(search_cache_dir)}
    server = ServerProcess(workdir / "ref", workdir / "tasks", settings=settings, name="ref")
    results = {}
    try:
        with server.start().client() as client:
            for query in OFFLINE:
                body = {"query": query, "report": REPORT}
                task_id = client.post("tasks", json=body).json()["task_id"]
                results[query] = wait_for(client, task_id, "completed", timeout=120)["result"]
    finally:
        server.stop()
    return results


@contextlib.contextmanager
def reported(log: ChaosLog) -> Iterator[None]:
    """Any failure inside says how to repeat the run and what the chaos did."""
    try:
        yield
    except BaseException as error:
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        log(f"FAILED: {type(error).__name__}: {error}")
        raise AssertionError(
            f"{error}\n\nRepeat with DR_CHAOS_SEED={SEED} DR_CHAOS_ITERATIONS={ITERATIONS}; "
            f"actions (whole log: {log.path}):\n{log.tail()}"
        ) from error


class Chaos:
    """One run: the fleet, the clients, the random choices and the figures."""

    def __init__(self, fleet: Fleet, log: ChaosLog, rng: random.Random) -> None:
        self.fleet = fleet
        self.log = log
        self.rng = rng
        self.stop_readers = threading.Event()
        self.readers: dict[str, Reader] = {}
        self._readers_lock = threading.Lock()
        self.submissions = Submissions(fleet.endpoints, log, self.follow)
        self.iterations = 0
        self.redone = 0  # units redone because Redis lost their checkpoint in an outage

    def follow(self, task_id: str) -> None:
        """Start the task's reader (from the first event) once its id is known."""
        with self._readers_lock:
            if task_id in self.readers:
                return
            rng = random.Random(f"{SEED}:{task_id}")
            reader = Reader(task_id, self.fleet.endpoints, rng, self.stop_readers)
            self.readers[task_id] = reader
        reader.start()

    def new_requests(self, iteration: int, offline_at: set[int]) -> None:
        rng = self.rng
        for n in range(rng.choice([0, 1, 1, 2])):
            units = rng.randint(4, 12)
            query = f"chaos {iteration}.{n} units={units} delay={rng.uniform(0.15, 0.4):.2f}"
            self.submissions.add({"query": query}, units)
            self.submissions.submit(query, rng.choice([1, 2, 2, 3, 4]), rng)
        if iteration in offline_at:
            query = OFFLINE[sorted(offline_at).index(iteration)]
            self.submissions.add({"query": query, "report": REPORT}, None)
            self.submissions.submit(query, 2, rng)
        known = sorted(self.submissions.queries)
        if known and rng.random() < 0.2:  # again: attaches, or returns the finished task
            self.submissions.submit(rng.choice(known), rng.choice([1, 2]), rng)
        for query in self.submissions.pending():
            self.submissions.submit(query, 2, rng)

    def run(self) -> None:
        """The chaos phase: one fault per iteration, within the budget."""
        rng = self.rng
        offline_at = set(rng.sample(range(ITERATIONS), min(len(OFFLINE), ITERATIONS)))
        deferred: list[Fault] = []
        started = time.monotonic()
        for iteration in range(ITERATIONS):
            if time.monotonic() - started > BUDGET:
                self.log(f"budget of {BUDGET:.0f}s used: chaos stops after {iteration} iterations")
                break
            self.log(f"-- iteration {iteration}")
            self.new_requests(iteration, offline_at)
            time.sleep(rng.uniform(0.0, 0.6))
            busy = {fault.target for fault in deferred}
            fault = self.fleet.choose(rng, busy=busy)
            if fault is not None:
                fault.deferred = rng.random() < 0.2
                self.fleet.begin(fault, rng)
                time.sleep(fault.hold)
            for old in deferred:
                self.fleet.end(old)
            deferred = []
            if fault is not None:
                if fault.deferred:
                    deferred.append(fault)
                else:
                    self.fleet.end(fault)
            self.iterations = iteration + 1
        for old in deferred:
            self.fleet.end(old)
        self.log(f"chaos over after {self.iterations} iterations; every process is up")

    def drain(self, client: httpx.Client) -> dict[str, dict[str, Any]]:
        """Send what no server took yet, then wait for every task to end: id -> TaskInfo."""
        deadline = time.monotonic() + DRAIN_SECONDS
        while self.submissions.pending():
            assert time.monotonic() < deadline, f"never taken: {self.submissions.pending()}"
            for query in self.submissions.pending():
                self.submissions.submit(query, 1, self.rng)
            time.sleep(0.5)
        self.submissions.wait(timeout=60)
        ended = {}
        for record in self.submissions.queries.values():
            task_id = record.task_id
            assert task_id is not None
            remaining = max(1.0, deadline - time.monotonic())
            ended[task_id] = wait_for(
                client, task_id, "completed", "failed", "cancelled", timeout=remaining
            )
        self.log(f"every task ended ({len(ended)})")
        for reader in self.readers.values():
            reader.join(max(1.0, deadline - time.monotonic()))
        self.stop_readers.set()
        return ended


def check_requests(chaos: Chaos, listed: set[str]) -> list[str]:
    """Identical requests made one task: one id per query, at most one 201, no stray task."""
    problems = list(chaos.submissions.problems)
    ids = set()
    for query, record in chaos.submissions.queries.items():
        answered = {o.task_id for o in record.outcomes if o.task_id}
        created = sum(1 for o in record.outcomes if o.code == 201)
        # No answer, or 503 (the store failed after the task may have been created).
        lost = any(o.code in (None, 503) for o in record.outcomes)
        if len(answered) != 1:
            problems.append(f"{query!r} answered with task ids {answered}")
        if created > 1 or (created == 0 and not lost):
            problems.append(f"{query!r} created {created} times: {record.outcomes}")
        ids |= answered
    if listed != ids:
        problems.append(f"stored tasks differ from the requests' (extra {listed - ids})")
    return problems


def check_tasks(
    chaos: Chaos,
    client: httpx.Client,
    ended: dict[str, dict[str, Any]],
    reference: dict[str, Any],
    storage: Path | None,
) -> list[str]:
    """Per task: ended completed, its stored log, its reader, and its report."""
    problems = []
    for query, record in chaos.submissions.queries.items():
        task_id = record.task_id
        assert task_id is not None
        info = ended[task_id]
        events = all_events(client, task_id)
        found = [] if info["status"] == "completed" else [f"ended {info['status']}: {info}"]
        if record.units is None:
            found += check_offline(events, info.get("result"))
            if info.get("result") != reference[query]:
                found.append("the offline result differs from an uninterrupted run's")
        else:
            scripted, redone = check_scripted(
                events, query, record.units, lost_checkpoints=chaos.fleet.redis is not None
            )
            found += scripted
            chaos.redone += redone
        if info["attempts"] != running_count(events):
            found.append(f"attempts {info['attempts']}, runner turns {running_count(events)}")
        reader = chaos.readers.get(task_id)
        if reader is None or not reader.ended:
            found.append("its reader did not reach the end")
        else:
            found += reader.problems + check_reader(reader.events, events)
        if storage is not None:
            found += check_file_log(log_of(storage, task_id))
        problems += [f"task {task_id} ({query!r}): {problem}" for problem in found]
    return problems


def figures(chaos: Chaos, ended: dict[str, dict[str, Any]], elapsed: float) -> str:
    counts = chaos.fleet.counts
    logs = chaos.fleet.logs()
    turns = sum(info["attempts"] - 1 for info in ended.values())
    takeovers = logs.count("whose runner stopped")  # another process resumed an orphan
    # Either the lease upkeep or a refused write finds it out first (both may log it).
    fenced = logs.count("was taken over by another server") + logs.count("Lost the lease")
    readers = chaos.readers.values()
    connections = sum(reader.connections + reader.errors for reader in readers)
    faults = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    redone = f"; {chaos.redone} units redone after Redis lost their checkpoint"
    return (
        f"chaos: seed {SEED}, {chaos.iterations} iterations in {elapsed:.0f}s; faults: {faults}; "
        f"{len(ended)} tasks, {turns} resumed runner turns ({takeovers} takeovers of orphans, "
        f"{fenced} times a runner found its lease taken and stopped), "
        f"{connections - len(ended)} reattachments by readers{redone if chaos.redone else ''}"
    )


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("backend", ["files", "redis"])
def test_chaos_run_keeps_every_promise(
    backend: str, tmp_path: Path, search_cache_dir: Path, offline_reference: dict[str, Any]
) -> None:
    started = time.monotonic()
    log = ChaosLog(
        tmp_path / "chaos.log",
        f"chaos run on {backend}: DR_CHAOS_SEED={SEED} DR_CHAOS_ITERATIONS={ITERATIONS}",
    )
    print(log.lines[0])
    storage = tmp_path / "tasks"
    storage.mkdir()
    settings: dict[str, Any] = {**SETTINGS, "cache_dir": str(search_cache_dir)}
    redis = None
    if backend == "redis":
        if redis_binary() is None:
            pytest.skip(INSTALL_HINT)
        redis = RedisProcess(tmp_path / "redis", appendonly=True).start()
        settings |= {"store": "redis", "redis_url": redis.url}
    fleet = Fleet(tmp_path, storage, settings, log, redis=redis)
    chaos = Chaos(fleet, log, random.Random(SEED))
    try:
        with reported(log):
            fleet.start()
            chaos.run()
            endpoint = fleet.endpoints()[0]
            with httpx.Client(base_url=endpoint.url, headers=endpoint.headers, timeout=30) as c:
                ended = chaos.drain(c)
                listed = {row["task_id"] for row in c.get("tasks").json()["tasks"]}
                problems = check_requests(chaos, listed)
                files = storage if backend == "files" else None
                problems += check_tasks(chaos, c, ended, offline_reference, files)
            summary = figures(chaos, ended, time.monotonic() - started)
            log(summary)
            print(summary)
            assert not problems, "\n".join(problems)
    finally:
        chaos.stop_readers.set()
        chaos.submissions.close()
        fleet.stop()


# The checks themselves, on logs written by hand: each must catch what it claims to.

Q = "q units=2 delay=0"


def scripted(*tokens: str) -> list[tuple[int, str, dict[str, Any]]]:
    """A run's events from short tokens: queued, running, paused, outage (paused by storage),
    plan, o<k> (unit k's output), u<k> (its progress), end (report, result, completed)."""
    events: list[tuple[str, dict[str, Any]]] = []
    for token in tokens:
        if token in ("queued", "running", "paused", "completed"):
            events.append(("status", {"status": token}))
        elif token == "outage":
            events.append(("status", {"status": "paused", "reason": "storage"}))
        elif token == "plan":
            events.append(("progress", {"step": "plan", "percentage": 0, "message": "Planning"}))
        elif token[0] == "o":
            events.append(("output", {"text": f"Unit {token[1:]} of {Q!r} done."}))
        elif token[0] == "u":
            events.append(("progress", {"step": "search", "message": f"unit {token[1:]}"}))
        else:
            assert token == "end"
            report = {"report": expected_report(Q, 2), "sources": []}
            events += [("progress", {"step": "report", "message": "Report written"})]
            events += [("result", report), ("status", {"status": "completed"})]
    return [(n, kind, data) for n, (kind, data) in enumerate(events, start=1)]


def problems(events: list[tuple[int, str, dict[str, Any]]]) -> list[str]:
    return check_scripted(events, Q, 2)[0]


def test_checks_accept_runs_cut_and_taken_over() -> None:
    plain = scripted("queued", "running", "plan", "o0", "u0", "o1", "u1", "end")
    assert problems(plain) == []
    # Killed after unit 1's output (checkpoint or not): the next turn redoes or skips it.
    for unit_1 in (["o1", "u1"], ["u1"]):
        again = ["queued", "running", "plan", "u0", *unit_1, "end"]
        run = scripted("queued", "running", "plan", "o0", "u0", "o1", *again)
        assert problems(run) == [], unit_1
    paused = scripted("queued", "running", "plan", "o0", "paused", "queued", "running", "plan")
    assert problems(paused[:-1]) == ["the report differs from an uninterrupted run's"]


def test_checks_catch_two_runners_and_lost_or_repeated_events() -> None:
    # B took over while A still wrote: A's unit 1 lands in B's turn.
    overlap = scripted("queued", "running", "plan", "o0", "running", "plan", "o1", "u0")
    assert "where unit 0's output or progress was due" in problems(overlap)[0]
    redone = scripted("queued", "running", "plan", "o0", "u0", "running", "plan", "o0", "u0")
    assert "redone after its checkpoint" in problems(redone)[0]
    twice = scripted("queued", "running", "plan", "o0", "o0", "u0")
    assert problems(twice)[0].startswith("id 5:")
    skipped = scripted("queued", "running", "plan", "u0")
    assert "skipped" in problems(skipped)[0]
    events = scripted("queued", "running", "plan", "o0", "u0", "o1", "u1", "end")
    gap = events[:3] + events[4:]
    assert check_ids(gap) == ["event ids not consecutive from 1: at position 4 id 5"]
    assert check_reader(gap, events) != [] and check_reader(events + events[-1:], events) != []
    assert check_reader(events, events) == []
    assert running_count(scripted("queued", "running", "plan", "running")) == 2


def test_a_checkpoint_lost_in_an_outage_is_tolerated_on_redis_only() -> None:
    # Unit 0's checkpoint write met the outage; the same server skipped it, a later turn redid it.
    turns = ["queued", "running", "plan", "o0", "outage", "queued", "running", "plan", "u0"]
    run = scripted(*turns, "queued", "running", "plan", "o0", "u0", "o1", "u1", "end")
    assert "redone after its checkpoint" in problems(run)[0]
    assert check_scripted(run, Q, 2, lost_checkpoints=True) == ([], 1)
    # Without the outage between output and progress, a redo is two runners even on Redis.
    plain = ["queued", "running", "plan", "o0", "u0", "outage", "queued", "running", "plan"]
    redo = scripted(*plain, "o0", "u0", "o1", "u1", "end")
    assert check_scripted(redo, Q, 2, lost_checkpoints=True)[0] != []


def test_file_log_check_catches_an_output_after_its_checkpoint() -> None:
    out: dict[str, Any] = {"k": "e", "t": "output", "d": {"text": f"Unit 0 of {Q!r} done."}}
    checkpoint = {"k": "c", "key": "unit-0"}
    records: list[dict[str, Any]] = [{**out, "id": 1}, checkpoint, {**out, "id": 2}]
    assert check_file_log(records) == ["raw log: unit 0's output after its checkpoint"]
    assert check_file_log(records[:2]) == []
    assert check_file_log([{**out, "id": 1}, {**out, "id": 1}]) != []


def wait_logged(server: ServerProcess, *markers: str, timeout: float = 30.0) -> str:
    """Wait until the server's log holds one of the markers; the one found."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = server.log()
        for marker in markers:
            if marker in text:
                return marker
        time.sleep(0.05)
    raise AssertionError(f"none of {markers} logged by {server.name}:\n{server.log()[-3000:]}")


@pytest.mark.slow
@pytest.mark.skipif(redis_binary() is None, reason=INSTALL_HINT)
def test_a_runner_frozen_through_an_outage_never_writes_back_a_task_finished_elsewhere(
    tmp_path: Path,
) -> None:
    """Found by the chaos run (seed 20250612, 50 iterations, Redis): a server whose run an
    outage paused was frozen while another server took the task over and completed it. Woken,
    its storage retry took the free lease and wrote its stale state over the completed task
    (which then looked paused, ran again, and ended with a head that disowned the last events)."""
    redis = RedisProcess(tmp_path / "redis", appendonly=True).start()
    settings = {**CLUSTER_SETTINGS, "store": "redis", "redis_url": redis.url}
    a, b = (ServerProcess(tmp_path / n, tmp_path, settings=settings, name=n) for n in "ab")
    start_all([a, b])
    assert a.process is not None
    try:
        with a.client() as client:
            body = {"query": "outage then freeze units=6 delay=0.3"}
            task_id = client.post("tasks", json=body).json()["task_id"]
            while client.get(f"tasks/{task_id}").json()["last_event_id"] < 5:
                time.sleep(0.05)
        redis.stop()
        wait_logged(a, f"Task {task_id} paused, storage unavailable")
        os.kill(a.process.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            redis = RedisProcess(redis.workdir, port=redis.port, appendonly=True).start()
            with b.client() as client:
                done = wait_for(client, task_id, "completed", timeout=60)
                finished = all_events(client, task_id)
            # As after any long freeze, the storage retry is due the moment the server wakes.
            time.sleep(max(0.0, frozen_at + MAINTENANCE_SECONDS + 1 - time.monotonic()))
        finally:
            os.kill(a.process.pid, signal.SIGCONT)
        wait_logged(a, "Lost the lease", "taken over by another server", "Storage is back")
        time.sleep(2 * LEASE_SECONDS)  # what a stale writer would do, it has done by now
        with b.client() as client:
            after = client.get(f"tasks/{task_id}").json()
            assert all_events(client, task_id) == finished
        assert (after["status"], after["attempts"]) == ("completed", done["attempts"]), after
        assert after["last_event_id"] == done["last_event_id"], after
        assert f"Storage is back; resuming task {task_id}" not in a.log()
    finally:
        stop_all([a, b])
        redis.stop()
