"""Fixtures for the kernel client: a scripted loopback server and a client bound to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kernel_fakes import FakeServer

from jupyter_deepresearch.kernel_helpers import Backoff, ResearchClient


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer().start()
    yield server
    server.stop()


@pytest.fixture
def client(fake: FakeServer) -> Iterator[ResearchClient]:
    with ResearchClient(fake.url, "secret", backoff=Backoff(initial=0.02, maximum=0.2)) as c:
        yield c


@pytest.fixture
def text_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_DEEPRESEARCH_DISPLAY", "text")


@pytest.fixture
def widget_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_DEEPRESEARCH_DISPLAY", "widget")
