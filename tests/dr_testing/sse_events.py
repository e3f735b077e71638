"""Decoding a whole SSE response body in tests, with httpx-sse's own decoders."""

from __future__ import annotations

import json
from typing import Any

from httpx_sse._decoders import SSEDecoder, SSELineDecoder


def parse_events(raw: bytes) -> list[tuple[int, str, Any]]:
    """(id, type, data) of every event that has an id, in order."""
    lines, decoder = SSELineDecoder(), SSEDecoder()
    events = []
    for line in [*lines.decode(raw.decode()), *lines.flush()]:
        sse = decoder.decode(line)
        if sse is not None and sse.id:
            events.append((int(sse.id), sse.event, json.loads(sse.data)))
    return events
