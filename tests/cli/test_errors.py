"""What a user sees when something is wrong: one line on stderr, exit status 3, no traceback.
And how the command finds a server without --url."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dr_testing.cli import SCRIPT, cli_env, run
from dr_testing.servers import ServerProcess, free_port

MISSING = "0" * 32


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_no_server_says_how_to_start_or_point_to_one(env: dict[str, str]) -> None:
    done = run(["list"], env)
    assert done.returncode == 3
    line = one_line(done.stderr)
    assert "no running Jupyter server" in line
    assert "jupyter lab" in line and "--url" in line


def test_a_server_that_is_not_there(env: dict[str, str]) -> None:
    done = run(["show", MISSING, f"--url=http://127.0.0.1:{free_port()}/"], env)
    assert done.returncode == 3
    assert "Could not reach the Jupyter server" in one_line(done.stderr)


def test_task_not_found(env: dict[str, str], at: list[str]) -> None:
    for command in ("show", "tail", "pause", "restart", "delete"):
        done = run([command, MISSING, *at], env)
        assert done.returncode == 3, (command, done.stderr)
        assert "(HTTP 404)" in one_line(done.stderr), command


def test_not_a_task_id(env: dict[str, str], at: list[str]) -> None:
    done = run(["tail", "../etc", *at], env)
    assert done.returncode == 3
    assert "not a task id" in one_line(done.stderr)


def test_server_refusals_are_one_line(env: dict[str, str], at: list[str]) -> None:
    body = json.dumps({"query": "units=1 refused", "colour": "blue"})
    done = run(["submit", "--json", body, *at], env)
    assert done.returncode == 3
    line = one_line(done.stderr)
    assert "colour: unknown field" in line and "(HTTP 400)" in line

    task_id = run(["submit", "units=1 finished", "--wait", *at], env)
    assert task_id.returncode == 0
    finished = run(["submit", "units=1 finished", *at], env).stdout.strip()
    done = run(["pause", finished, *at], env)
    assert done.returncode == 3
    assert "(HTTP 409)" in one_line(done.stderr)


def test_bad_usage(env: dict[str, str], at: list[str]) -> None:
    assert "a question is required" in one_line(run(["submit", *at], env).stderr)
    assert "valid JSON" in one_line(run(["submit", "--json", "{", *at], env).stderr)
    assert "expected one task id" in one_line(run(["show", *at], env).stderr)
    unknown = run(["frobnicate"], env)
    assert unknown.returncode == 3
    assert "Unknown subcommand 'frobnicate'" in unknown.stderr
    # A typo is never taken for a task's end (1 failed, 2 cancelled).
    assert run(["submit", "q", "--wiat", *at], env).returncode == 3
    assert run(["list", "--status=finished", *at], env).returncode == 3
    assert run(["tail", "--help"], env).returncode == 0


def test_found_through_the_runtime_file_of_the_only_running_server(
    server: ServerProcess, env: dict[str, str]
) -> None:
    # The server wrote jpserver-<pid>.json (URL and token) in its runtime folder.
    env = cli_env(server.workdir / "runtime")
    done = run(["submit", "units=1 found it", "--wait"], env)
    assert done.returncode == 0, done.stderr
    # --url alone takes the token from that server's runtime file.
    listed = run(["list", f"--url=http://127.0.0.1:{server.port}/"], env)
    assert listed.returncode == 0, listed.stderr


def test_found_through_the_environment_the_extension_sets(
    server: ServerProcess, env: dict[str, str]
) -> None:
    env = {
        **env,
        "JUPYTER_DEEPRESEARCH_URL": f"http://127.0.0.1:{server.port}/",
        "JUPYTER_DEEPRESEARCH_TOKEN": server.token,
    }
    assert run(["list"], env).returncode == 0


def test_jupyter_finds_the_subcommands(env: dict[str, str]) -> None:
    jupyter = str(SCRIPT).replace("jupyter-deepresearch", "jupyter")
    done = subprocess.run(
        [jupyter, "deepresearch", "--help-all"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    for name in ("list", "show", "tail", "submit", "restart", "delete", "worker"):
        assert f"\n{name}\n" in done.stdout
    sub = subprocess.run(
        [sys.executable, "-m", "jupyter_deepresearch.extension.worker", "submit", "--help-all"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert sub.returncode == 0, sub.stderr
    assert "--SubmitCommand.breadth" in sub.stdout
    # The worker keeps its own options (and the server's configuration section).
    worker = run(["worker", "--help-all"], env)
    assert worker.returncode == 0, worker.stderr
    assert "--DeepResearchApp.storage_dir" in worker.stdout


def test_several_running_servers_are_never_guessed_between(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    # Two live processes (this test and init) with runtime files, and one left by a crash.
    for pid, port in ((os.getpid(), 1), (1, 2), (dead_pid(), 3)):
        info = {"url": f"http://127.0.0.1:{port}/", "token": "t", "pid": pid}
        (runtime / f"jpserver-{pid}.json").write_text(json.dumps(info))
    done = run(["list"], cli_env(runtime))
    assert done.returncode == 3
    line = one_line(done.stderr)
    assert "several Jupyter servers are running" in line and "--url" in line
    assert "127.0.0.1:1/" in line and "127.0.0.1:2/" in line
    assert "127.0.0.1:3/" not in line


def dead_pid() -> int:
    """The pid of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid
