"""Libraries' own log chatter kept out of a server's log."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Only errors from logger `name` while the block runs (bm25s logs at INFO and warns about
    optional backends; pypdf logs each repair of a damaged PDF it can still read)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
