"""`research.threads`: blocking work in daemon threads that never hold up the server's exit."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading

import pytest

from jupyter_deepresearch.extension.research.threads import run_in_daemon_thread


def test_returns_the_result_from_a_daemon_thread() -> None:
    def where() -> tuple[str, bool]:
        return threading.current_thread().name, threading.current_thread().daemon

    name, daemon = asyncio.run(run_in_daemon_thread(where))
    assert daemon and name == "deepresearch-where"


def test_raises_what_the_work_raised() -> None:
    def boom(text: str) -> None:
        raise ValueError(text)

    with pytest.raises(ValueError, match="broken"):
        asyncio.run(run_in_daemon_thread(boom, "broken"))


def test_cancelling_the_caller_abandons_the_work_at_once() -> None:
    release = threading.Event()

    async def main() -> bool:
        call = asyncio.create_task(run_in_daemon_thread(release.wait, 30))
        await asyncio.sleep(0.05)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        return call.cancelled()

    try:
        assert asyncio.run(main())
    finally:
        release.set()


def test_a_process_exits_while_abandoned_work_still_runs() -> None:
    """Regression: AnyIO's worker threads are joined at exit, so a server stopped during an
    index build or a long extraction hung until the work ended (or a SIGKILL came)."""
    script = textwrap.dedent(
        """
        import asyncio, time
        from jupyter_deepresearch.extension.research.threads import run_in_daemon_thread

        async def main():
            call = asyncio.create_task(run_in_daemon_thread(time.sleep, 3600))
            await asyncio.sleep(0.1)
            call.cancel()

        asyncio.run(main())
        print("exited")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "exited"
