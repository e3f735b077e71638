"""Server-Sent Events wire format (encoder only; clients decode with httpx-sse)."""

from __future__ import annotations

import json
import re
from typing import Any

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def encode_event(event_id: int, event: str, data: Any) -> bytes:
    """One `id:`/`event:`/`data:` block; data that spans lines becomes several `data:` lines."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    if _LINE_BREAK.search(event):
        raise ValueError("an SSE event name cannot contain a line break")
    lines = [f"id: {event_id}", f"event: {event}"]
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(text))
    return ("\n".join(lines) + "\n\n").encode()


def encode_comment(text: str = "keepalive") -> bytes:
    """Comment lines: ignored by clients, keep proxies and idle timers from closing us.

    No blank line follows: a blank line would end an (empty) event block, and decoders that
    keep the last event id (httpx-sse does, as the spec says) would then dispatch a phantom
    event carrying the previous id.
    """
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text)).encode()


def encode_retry(milliseconds: int) -> bytes:
    """Tell the client how long to wait before reconnecting."""
    return f"retry: {int(milliseconds)}\n\n".encode()
