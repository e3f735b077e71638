"""A disk that fills up on command: ENOSPC injected at the store's single write function."""

from __future__ import annotations

import errno
import os

import pytest

from jupyter_deepresearch.extension.store import _atomic


class Disk:
    """A switchable ENOSPC at `_atomic.write_all`, the one function every store write uses.

    With `new_files_only`, appends to existing logs still succeed and only whole-file writes
    (temp files of atomic replacements) fail, as on a nearly full disk whose last pages have room.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, new_files_only: bool = False) -> None:
        self.failing = False
        self.refused = 0
        real = _atomic.write_all

        def write_all(fd: int, data: bytes) -> None:
            if new_files_only and not os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
                real(fd, data)  # an append to a log: the last page still has room
                return
            if self.failing:
                self.refused += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(fd, data)

        monkeypatch.setattr(_atomic, "write_all", write_all)
