"""`validate_request` and the provider registry: fast, offline, and clear about the field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from jupyter_deepresearch.extension.errors import BadRequest
from jupyter_deepresearch.extension.models import ResearchRequest
from jupyter_deepresearch.extension.research import (
    SearchProvider,
    known_providers,
    register,
    registry,
    validate_request,
)


def _request(**body: Any) -> ResearchRequest:
    return ResearchRequest.model_validate({"query": "q", **body})


def test_known_providers_lists_builtins() -> None:
    known = known_providers()
    assert {"extractive", "openai-compatible"} <= set(known["ai"])
    assert {"local", "searxng"} <= set(known["search"])


def test_default_request_is_valid(tmp_path: Path) -> None:
    validate_request(_request(), tmp_path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"ai": {"provider": "gpt"}},
            r"ai\.provider: unknown provider 'gpt'; known providers: .*extractive.*openai",
        ),
        (
            {"search": {"provider": "bing"}},
            r"search\.provider: unknown provider 'bing'; known providers: .*local.*searxng",
        ),
        (
            {"ai": {"provider": "openai-compatible", "base_url": "http://x/v1"}},
            r"ai\.model: required",
        ),
        ({"ai": {"provider": "openai-compatible", "model": "m"}}, r"ai\.base_url: required"),
        (
            {"ai": {"provider": "openai-compatible", "model": "m", "base_url": "ftp://x"}},
            r"ai\.base_url: must be an http",
        ),
        ({"search": {"provider": "searxng"}}, r"search\.base_url: required"),
        (
            {"search": {"sources": ["../outside"]}},
            r"search\.sources: '\.\./outside' resolves outside the server's root directory",
        ),
        ({"search": {"sources": ["/etc"]}}, r"outside the server's root directory"),
        ({"search": {"sources": ["nope"]}}, r"search\.sources: folder 'nope' does not exist"),
    ],
)
def test_bad_requests_name_the_field(tmp_path: Path, body: dict[str, Any], message: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    with pytest.raises(BadRequest, match=message):
        validate_request(_request(**body), root)


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret"
    secret.mkdir()
    os.symlink(secret, root / "link")
    with pytest.raises(BadRequest, match="outside the server's root directory"):
        validate_request(_request(search={"sources": ["link"]}), root)


def test_folders_inside_the_root_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "notes" / "deep").mkdir(parents=True)
    validate_request(_request(search={"sources": ["notes", "notes/deep/../deep"]}), tmp_path)


def test_a_file_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "x.md").write_text("hi")
    with pytest.raises(BadRequest, match="is not a folder"):
        validate_request(_request(search={"sources": ["x.md"]}), tmp_path)


class _Dummy(SearchProvider):
    name = "dummy"

    async def search(self, query: str) -> list[Any]:
        return []


def test_registered_provider_is_known(tmp_path: Path) -> None:
    register(_Dummy)
    assert "dummy" in known_providers()["search"]
    validate_request(_request(search={"provider": "dummy"}), tmp_path)


def test_entry_points_extend_the_registry(monkeypatch: Any, tmp_path: Path) -> None:
    class EP:
        name = "from-plugin"

        def load(self) -> type:
            return _Dummy

    class Broken:
        name = "broken"

        def load(self) -> type:
            raise ImportError("missing dependency")

    def fake_entry_points(group: str) -> list[Any]:
        assert group == "jupyter_deepresearch.providers"
        return [EP(), Broken()]

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_plugins", None)
    assert "from-plugin" in known_providers()["search"]
    assert "broken" not in known_providers()["search"]
    validate_request(_request(search={"provider": "from-plugin"}), tmp_path)
    monkeypatch.setattr(registry, "_plugins", None)
