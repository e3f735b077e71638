"""Blocking research work (index builds, extraction) off the event loop, in daemon threads.

AnyIO's and concurrent.futures' worker threads are not daemons: the interpreter joins them at
exit, so a server stopped during an index build or a long extraction hung in
`threading._shutdown` until the work finished or the spawner's SIGKILL came. A cancelled call
abandons its thread here (the run stops at once) and a daemon thread never delays exit; what it
was computing is thrown away, and what it writes (the index cache) is written atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def run_in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a new daemon thread; cancelling the caller abandons the thread."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # the caller was cancelled meanwhile
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def work() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn(*args)
        except BaseException as caught:
            error = caught
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name=f"deepresearch-{fn.__name__}", daemon=True).start()
    return await future
