"""The scrubber on its own: every spelling of a secret, URL user-info, log records."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote

import pytest
from traitlets import TraitError

from jupyter_deepresearch.extension import redact
from jupyter_deepresearch.extension.app import DeepResearchApp
from jupyter_deepresearch.extension.resolve import endpoint, same_endpoint

SECRET = "sk-R3dact\\me\"'/+=&-0123"


@pytest.fixture(autouse=True)
def _known() -> None:
    redact.remember(SECRET)


@pytest.mark.parametrize(
    "spelling",
    [
        SECRET,
        repr(SECRET)[1:-1],
        repr(SECRET.encode())[2:-1],
        json.dumps(SECRET)[1:-1],
        quote(SECRET, safe=""),
        quote(SECRET),
    ],
    ids=["raw", "repr", "bytes-repr", "json", "percent", "percent-path"],
)
def test_every_spelling_of_a_secret_is_masked(spelling: str) -> None:
    text = f"failed: header {spelling} refused"
    assert redact.scrub(text) == "failed: header *** refused"


def test_text_without_secrets_is_unchanged() -> None:
    text = "Model 'm' was not found at http://127.0.0.1:8000/v1 (HTTP 404)"
    assert redact.scrub(text) == text


@pytest.mark.parametrize(
    ("url", "clean", "user", "password"),
    [
        ("http://u:p%40ss@host:8/v1", "http://host:8/v1", "u", "p@ss"),
        ("https://token@host/v1", "https://host/v1", "token", None),
        ("http://a@b@host/x?q=1@2", "http://host/x?q=1@2", "a@b", None),
        ("http://host/v1?next=http://u:p@evil", "http://host/v1?next=http://u:p@evil", None, None),
        ("u:p@host/v1", "host/v1", "u", "p"),  # no scheme: redacted all the same
        ("http://[::1]:8/v1", "http://[::1]:8/v1", None, None),
    ],
)
def test_user_info_is_cut_out_of_urls(
    url: str, clean: str, user: str | None, password: str | None
) -> None:
    parts = redact.split_userinfo(url)
    assert (parts.url, parts.username, parts.password) == (clean, user, password)


def test_url_credentials_are_remembered_with_their_basic_token() -> None:
    redact.remember_url("http://alice:Open-Sesame-42@host/v1")
    token = base64.b64encode(b"alice:Open-Sesame-42").decode()
    text = f"sent Authorization: Basic {token} with Open-Sesame-42"
    assert redact.scrub(text) == "sent Authorization: Basic *** with ***"
    assert "alice" in redact.scrub("user alice")  # a user name before a password is no secret


def test_log_records_are_scrubbed_message_args_and_traceback() -> None:
    redact.install_log_scrubbing()
    logger = logging.getLogger("test_redact.records")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    try:
        try:
            raise ValueError(f"bad header {SECRET.encode()!r}")
        except ValueError:
            logger.exception("request with %s failed", SECRET)
    finally:
        logger.removeHandler(handler)
    text = logging.Formatter().format(records[0])
    assert "R3dact" not in text
    assert "request with *** failed" in text and "ValueError: bad header b'***'" in text


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("http://gw:80/v1/", "HTTP://GW/v1", True),
        ("https://u:p@gw/v1", "https://gw/v1", True),
        ("http://gw/v1", "http://gw/attacker/v1", False),
        ("http://gw/v1", "http://gw:8080/v1", False),
        ("http://gw/v1", "https://gw/v1", False),
        ("http://gw/v1", None, False),
        (None, None, True),
    ],
)
def test_endpoints_compare_as_http_does(a: str | None, b: str | None, same: bool) -> None:
    assert same_endpoint(a, b) is same


def test_allow_list_matches_the_host_a_url_connects_to() -> None:
    assert endpoint("http://gw.example.org@evil.example/v1") == "http://evil.example/v1"


@pytest.mark.parametrize("key", ["sk-bad\x00key", "sk-bad\nkey", "sk-bäd"])
def test_configured_key_a_header_cannot_carry_is_refused_without_echo(key: str) -> None:
    with pytest.raises(TraitError) as info:
        DeepResearchApp(default_ai={"provider": "openai-compatible", "api_key": key})
    message = str(info.value)
    assert "default_ai['api_key']" in message and "control character" in message
    assert "sk-" not in message


def test_configured_key_read_with_its_newline_is_stripped() -> None:
    app = DeepResearchApp(default_search={"provider": "searxng", "api_key": " sk-file-key\n"})
    assert app.default_search["api_key"] == "sk-file-key"
