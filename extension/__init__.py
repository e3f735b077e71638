"""jupyter-deepresearch server extension: background deep-research tasks with REST and SSE."""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    # Imported here so that the pure modules (models, fingerprint) load without jupyter_server.
    from .app import DeepResearchApp

    return [{"module": "jupyter_deepresearch.extension", "app": DeepResearchApp}]
