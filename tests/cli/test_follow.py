"""`submit`, `tail` and `submit --wait` against a real server: exit codes 0/1/2/4, the report on
stdout, and a tail that continues after its connection is cut."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import subprocess
from pathlib import Path

from dr_testing.cli import SCRIPT, Running, run, server_args
from dr_testing.relay import Relay
from dr_testing.servers import ServerProcess

LONG = "units=400 delay=0.1"  # about 40 s: long enough to act on it while it runs


def submit(query: str, env: dict[str, str], at: list[str]) -> str:
    done = run(["submit", query, *at], env)
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", task_id), done.stdout
    return task_id


def test_submit_prints_only_the_id_and_attaches_the_second_time(
    env: dict[str, str], at: list[str]
) -> None:
    first = run(["submit", "units=2 attach once", *at], env)
    second = run(["submit", "units=2   attach once", *at], env)  # same request once normalised
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout
    assert "created task" in first.stderr
    assert "attached task" in second.stderr


def test_submit_wait_prints_the_report_and_exits_0(env: dict[str, str], at: list[str]) -> None:
    done = run(["submit", "units=3 report please", "--wait", *at], env)
    assert done.returncode == 0, done.stderr
    assert "**completed**" in done.stdout
    assert "Unit 2 of 'units=3 report please' done." in done.stdout
    assert "[completed]" in done.stderr  # progress went to stderr, not into the report


def test_failed_task_exits_1(env: dict[str, str], at: list[str]) -> None:
    done = run(["submit", "units=3 fail-at=1 exit one", "--wait", *at], env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Unit 1 failed on purpose." in done.stderr
    assert done.stdout == ""


def test_tail_of_a_cancelled_task_exits_2(env: dict[str, str], at: list[str]) -> None:
    task_id = submit(f"{LONG} cancel me", env, at)
    tail = Running(["tail", task_id, *at], env)
    try:
        tail.wait_for_line("search")  # it follows the task
        cancelled = run(["cancel", task_id, *at], env)
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.split() == [task_id, "cancelled"]
        code, _, stderr = tail.finish()
    finally:
        tail.kill()
    assert code == 2, stderr
    assert f"resume {task_id}" in stderr
    # Once it is over, a second tail answers at once with the same status.
    again = run(["tail", task_id, *at], env)
    assert again.returncode == 2, again.stderr


def test_tail_stops_with_4_when_a_person_paused_the_task(
    env: dict[str, str], at: list[str]
) -> None:
    task_id = submit(f"{LONG} pause me", env, at)
    tail = Running(["tail", task_id, *at], env)
    try:
        tail.wait_for_line("search")
        paused = run(["pause", task_id, *at], env)
        assert paused.returncode == 0, paused.stderr
        code, _, stderr = tail.finish()
    finally:
        tail.kill()
        run(["cancel", task_id, *at], env)
    assert code == 4, stderr
    assert "[paused]" in stderr


def test_tail_continues_after_the_connection_is_cut(
    server: ServerProcess, env: dict[str, str], at: list[str]
) -> None:
    task_id = submit("units=12 delay=0.4 cut the line", env, at)
    relay = Relay(server.port).start()
    tail = Running(["tail", task_id, f"--url=http://127.0.0.1:{relay.port}/", at[1]], env)
    try:
        tail.wait_for_line("search")
        assert relay.cut() >= 1
        tail.wait_for_line("reconnecting")
        code, stdout, stderr = tail.finish()
    finally:
        tail.kill()
        relay.stop()
    assert code == 0, stderr
    for unit in range(12):
        assert stdout.count(f"Unit {unit} of") == 1
    streams = [bytes(sent) for sent in relay.requests if b"/events" in sent]
    assert len(streams) >= 2, "the stream was not reopened"
    # The reopened stream asks for what came after the events the cut one delivered.
    assert last_event_id(streams[-1]) > last_event_id(streams[0])


def last_event_id(request: bytes) -> int:
    found = re.search(rb"last-event-id: (\d+)", request, re.IGNORECASE)
    return int(found.group(1)) if found else 0


def test_a_terminal_gets_a_progress_bar(env: dict[str, str], at: list[str]) -> None:
    primary, secondary = pty.openpty()
    task_id = submit("units=20 delay=0.3 in a terminal", env, at)
    process = subprocess.Popen(
        [SCRIPT, "tail", task_id, *at],
        env={**env, "TERM": "xterm", "COLUMNS": "120"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=secondary,
    )
    os.close(secondary)
    screen = bytearray()
    with contextlib.suppress(OSError):  # EIO once the command exits and the terminal closes
        while chunk := os.read(primary, 4096):
            screen += chunk
    os.close(primary)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0, screen.decode(errors="replace")
    drawn = screen.decode(errors="replace")
    assert "━" in drawn  # the bar, drawn and redrawn in place
    assert "\x1b[" in drawn  # with cursor movements
    assert b"# Report" in stdout  # the report still goes to stdout, plain


def test_submit_options_fill_the_request_over_a_json_body(
    server: ServerProcess, env: dict[str, str], at: list[str]
) -> None:
    for folder in ("notes", "papers"):
        (server.workdir / "root" / folder).mkdir(exist_ok=True)
    body = {"query": "units=1 options", "report": {"breadth": 3, "language": "English"}}
    options = ["--sources=notes", "--sources=papers", "--depth=1", "--language=German"]
    done = run(["submit", f"--json={json.dumps(body)}", *options, "--json-output", *at], env)
    assert done.returncode == 0, done.stderr
    request = json.loads(done.stdout)["request"]
    assert request["query"] == "units=1 options"
    assert request["search"]["sources"] == ["notes", "papers"]
    assert request["report"] == {"breadth": 3, "depth": 1, "language": "German"}


def test_tail_follows_a_task_through_a_restart_of_its_server(
    tmp_path: Path, env: dict[str, str]
) -> None:
    settings = {"pipeline": "dr_testing.pipelines:stepped"}
    first = ServerProcess(tmp_path / "one", tmp_path / "tasks", settings=settings).start()
    relay = Relay(first.port).start()
    at = [f"--url=http://127.0.0.1:{relay.port}/", f"--token={first.token}"]
    second = None
    tail = None
    try:
        task_id = submit("units=15 delay=0.4 survive a restart", env, at)
        tail = Running(["tail", task_id, *at], env)
        tail.wait_for_line("search")
        first.stop()  # SIGTERM: the server pauses the task (reason `shutdown`) and exits
        second = ServerProcess(tmp_path / "two", tmp_path / "tasks", settings=settings)
        second.token = first.token
        relay.target_port = second.start().port  # same store: it resumes the task
        code, stdout, stderr = tail.finish()
    finally:
        if tail is not None:
            tail.kill()
        relay.stop()
        first.stop()
        if second is not None:
            second.stop()
    assert code == 0, stderr
    assert "reconnecting" in stderr
    # It saw the shutdown's pause and kept following (that pause ends by itself).
    paused = stderr.index("[paused]")
    assert stderr.index("[running]", paused) < stderr.index("[completed]", paused)
    for unit in range(15):
        assert stdout.count(f"Unit {unit} of") == 1


def test_tail_waits_through_a_shutdown_pause_but_not_a_persons(
    tmp_path: Path, env: dict[str, str]
) -> None:
    settings = {"pipeline": "dr_testing.pipelines:stepped"}
    first = ServerProcess(tmp_path / "one", tmp_path / "tasks", settings=settings).start()
    second = ServerProcess(
        tmp_path / "two", tmp_path / "tasks", settings={**settings, "auto_resume": False}
    )
    tail = None
    try:
        task_id = submit(f"{LONG} left by a shutdown", env, server_args(first))
        watcher = Running(["tail", task_id, *server_args(first)], env)
        watcher.wait_for_line("search")  # it runs
        watcher.kill()
        first.stop()  # pauses it with reason `shutdown`; the next server leaves it paused
        at = server_args(second.start())
        tail = Running(["tail", task_id, *at], env)
        tail.wait_for_line("[paused]")
        # Still following (a shutdown's pause ends by itself): it sees what happens next.
        assert run(["cancel", task_id, *at], env).returncode == 0
        code, _, stderr = tail.finish()
        assert code == 2, stderr

        # A person's pause: nothing will happen until someone acts, so tail says so at once.
        assert run(["resume", task_id, *at], env).returncode == 0
        assert run(["pause", task_id, *at], env).returncode == 0
        paused = run(["tail", task_id, *at], env)
        assert paused.returncode == 4, paused.stderr
        assert f"resume {task_id}" in paused.stderr
    finally:
        if tail is not None:
            tail.kill()
        first.stop()
        second.stop()
