"""Fixtures for the store tests: a fresh storage folder per test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Where the store under test keeps its files (created by `open()`)."""
    return tmp_path / "tasks"
