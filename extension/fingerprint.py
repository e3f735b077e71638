"""Task identity: the same normalised request always maps to the same task id. Pure module."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Any

from .models import ResearchRequest, public_dump

FINGERPRINT_VERSION = 1


def normalise_query(query: str) -> str:
    """Strip, collapse inner white space runs to one space, and NFC-normalise (case kept)."""
    return unicodedata.normalize("NFC", " ".join(query.split()))


def canonical_json(value: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8: one byte string per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(request: ResearchRequest, owner: str | None = None) -> str:
    """SHA-256 hex digest of the request with defaults applied; secrets and `restart` excluded.

    `request` must already carry the server's defaults (see `tasks.requests.Requests.resolve`);
    `owner` is given only when tasks are scoped per user.
    """
    payload: dict[str, Any] = {
        "v": FINGERPRINT_VERSION,
        "query": normalise_query(request.query),
        "ai": public_dump(request.ai),
        "search": public_dump(request.search),
        "report": public_dump(request.report),
    }
    if owner is not None:
        payload["owner"] = owner
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def task_id_for(request: ResearchRequest, owner: str | None = None) -> str:
    """The task id: the first 32 hex digits of the fingerprint (which `ids.is_task_id` admits)."""
    return fingerprint(request, owner)[:32]
