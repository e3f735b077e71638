"""Every text a secret could leak into, gathered for a test to search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dr_testing.sse_events import parse_events


async def exposed_texts(api: Any, dr_app: Any, task_id: str, storage_dir: Path) -> dict[str, str]:
    """What clients, the disk and the SSE stream show of a task, by where it was found.

    `sse-status` holds the stream's status events only, so a test can prove that path was
    exercised (not only that the secret is absent from it).
    """
    texts: dict[str, str] = {}
    texts["GET tasks/{id}"] = (await api("GET", "tasks", task_id)).body.decode()
    texts["GET tasks"] = (await api("GET", "tasks")).body.decode()
    stream = await api("GET", "tasks", task_id, "events", params={"follow": "false"})
    texts["SSE"] = stream.body.decode()
    statuses = [data for _, kind, data in parse_events(stream.body) if kind == "status"]
    texts["sse-status"] = json.dumps(statuses, ensure_ascii=False)
    await dr_app.manager.store.flush()
    for path in sorted(storage_dir.rglob("*")):
        if path.is_file():
            texts[f"disk {path.name}"] = path.read_text(errors="replace")
    return texts


def log_texts(caplog: Any, jp_logging_stream: Any, dr_log: Any) -> dict[str, str]:
    """What the server logged during the test, through every handler the tests attach."""
    return {
        "log (caplog)": caplog.text,
        "log (server stream)": jp_logging_stream.getvalue(),
        "log (extension)": dr_log.getvalue(),
    }


def assert_absent(markers: list[str], texts: dict[str, str]) -> None:
    """None of `markers` (distinctive pieces of a secret) occurs in any text."""
    found = [(where, m) for where, text in texts.items() for m in markers if m in text]
    assert not found, f"secret found in: {found}"
