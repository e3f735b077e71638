"""Durable file primitives: whole writes, atomic replacement, fsync, cache reads, and
disk-error messages."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
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


# A cache file is never a link, never waited for (a FIFO), and never read past a cap.
_CACHE_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def read_cache_file(path: Path, max_bytes: int) -> bytes | None:
    """A cache file's bytes; None if missing, not a regular file, or over `max_bytes`.

    Caches live in a folder others may write to (a shared store): whatever is found there must
    not hang a server (a FIFO, a device) or fill its memory (a link to /dev/zero).
    """
    try:
        fd = os.open(path, _CACHE_OPEN_FLAGS)  # missing, or a symbolic link (ELOOP): OSError
        with open(fd, "rb") as file:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
                return None
            data = file.read(max_bytes + 1)
    except OSError:  # a cache: whatever keeps it from being read, it is rebuilt
        return None
    return data if len(data) <= max_bytes else None


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
