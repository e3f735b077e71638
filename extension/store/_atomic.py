"""Durable file primitives: whole writes, atomic replacement, fsync, and disk-error messages."""

from __future__ import annotations

import contextlib
import errno
import os
import time
import uuid
from pathlib import Path

from ..errors import StoreUnavailable

TMP_SUFFIX = ".tmp"
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data` to `fd`; the single place disk writes go through."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(directory: Path) -> None:
    """Make renames and new names inside `directory` durable."""
    if os.name == "nt":  # Windows cannot open a folder as a file; NTFS journals renames itself
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """A unique hidden temp file beside `path` (same folder, so rename stays atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: temp file, fsync, rename, fsync the folder."""
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        # A failed write (disk full) must not leave a temp file eating the space it lacked.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def remove_stale_temps(directory: Path, max_age: float = 3600.0) -> int:
    """Delete temp files left by a crash; young ones may belong to another live server."""
    removed = 0
    cutoff = time.time() - max_age
    for entry in os.scandir(directory):
        if entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX):
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass
    return removed


def storage_error(exc: OSError, directory: Path) -> StoreUnavailable:
    """The `StoreUnavailable` a client sees for a disk error, saying what is wrong in words."""
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL:
        message = f"Task storage {directory} is full ({reason})"
    elif exc.errno in _READ_ONLY:
        message = f"Task storage {directory} is read-only or not writable ({reason})"
    else:
        message = f"Task storage {directory} cannot be used ({reason})"
    error = StoreUnavailable(message)
    error.__cause__ = exc
    return error
