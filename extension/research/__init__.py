"""The research engine: the deep-research pipeline, its providers and the offline default."""

from __future__ import annotations

from .base import AIProvider, RunOptions, SearchProvider
from .context import ResearchContext, ResearchPipeline
from .pipeline import run_research
from .registry import ENTRY_POINT_GROUP, known_providers, register, validate_request

__all__ = [
    "ENTRY_POINT_GROUP",
    "AIProvider",
    "ResearchContext",
    "ResearchPipeline",
    "RunOptions",
    "SearchProvider",
    "known_providers",
    "register",
    "run_research",
    "validate_request",
]
