"""Provider registry: built-ins by name, plus classes other packages declare as entry points.

A third-party provider is one module with an `AIProvider` or `SearchProvider` subclass, declared
in its package as::

    [project.entry-points."jupyter_deepresearch.providers"]
    my-search = "my_package.my_module:MySearch"

The entry point's name is the provider name used in requests (`search.provider = "my-search"`).
"""

from __future__ import annotations

import importlib
import logging
import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from ..errors import BadRequest
from ..models import ResearchRequest
from .base import AIProvider, SearchProvider

ENTRY_POINT_GROUP = "jupyter_deepresearch.providers"

# Built-ins are imported on first use so that validating a request stays cheap.
_BUILTINS: dict[str, dict[str, str]] = {
    "ai": {
        "extractive": "extractive:ExtractiveWriter",
        "openai-compatible": "openai_compat:OpenAICompatible",
    },
    "search": {
        "local": "local_search:LocalSearch",
        "searxng": "searxng:SearXNGSearch",
    },
}

log = logging.getLogger(__name__)
_lock = threading.Lock()
_plugins: dict[str, dict[str, type[Any]]] | None = None
_extra: dict[str, dict[str, type[Any]]] = {"ai": {}, "search": {}}


def register(cls: type[AIProvider] | type[SearchProvider], name: str | None = None) -> None:
    """Register a provider class in this process (tests and embedding applications)."""
    _extra[cls.kind][name or cls.name] = cls


def _entry_point_providers() -> dict[str, dict[str, type[Any]]]:
    global _plugins
    with _lock:
        if _plugins is None:
            found: dict[str, dict[str, type[Any]]] = {"ai": {}, "search": {}}
            for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                try:
                    cls = ep.load()
                    kind = cls.kind
                except Exception as exc:  # a broken plugin must not break the server
                    log.warning("Provider entry point %r failed to load: %s", ep.name, exc)
                    continue
                if kind not in found:
                    log.warning("Provider entry point %r has unknown kind %r", ep.name, kind)
                    continue
                found[kind].setdefault(ep.name, cls)
            _plugins = found
        return _plugins


def known_providers() -> dict[str, list[str]]:
    """Names of every available provider: `{"ai": [...], "search": [...]}`, sorted."""
    plugins = _entry_point_providers()
    return {
        kind: sorted(set(_BUILTINS[kind]) | set(plugins[kind]) | set(_extra[kind]))
        for kind in ("ai", "search")
    }


def provider_class(kind: str, name: str) -> type[Any]:
    """The class of provider `name` of `kind` ("ai" or "search"); BadRequest if unknown."""
    if name in _extra[kind]:
        return _extra[kind][name]
    if name in _BUILTINS[kind]:
        module, attr = _BUILTINS[kind][name].split(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), attr)
    plugins = _entry_point_providers()
    if name in plugins[kind]:
        return plugins[kind][name]
    known = ", ".join(known_providers()[kind])
    raise BadRequest(f"{kind}.provider: unknown provider {name!r}; known providers: {known}")


def validate_request(request: ResearchRequest, root_dir: Path) -> None:
    """Reject a request that cannot run (unknown provider, missing field, bad source folder).

    Fast and free of network I/O: the manager calls it before creating a task.
    """
    ai_cls = provider_class("ai", request.ai.provider)
    ai_cls.validate(request.ai)
    search_cls = provider_class("search", request.search.provider)
    resolve_sources(request.search.sources, root_dir)
    search_cls.validate(request.search, root_dir)


def resolve_sources(sources: tuple[str, ...], root_dir: Path) -> list[Path]:
    """Source folders resolved (symlinks followed) and checked to lie inside `root_dir`."""
    root = root_dir.resolve()
    resolved: list[Path] = []
    for name in sources:
        path = (root / name).resolve()
        if path != root and not path.is_relative_to(root):
            raise BadRequest(
                f"search.sources: {name!r} resolves outside the server's root directory; "
                "only folders inside it can be searched"
            )
        if not path.exists():
            raise BadRequest(
                f"search.sources: folder {name!r} does not exist in the server's root directory"
            )
        if not path.is_dir():
            raise BadRequest(f"search.sources: {name!r} is not a folder")
        resolved.append(path)
    return resolved
