"""Secrets out of every text: the one module that knows the secrets in memory and scrubs them.

A secret (an API key, the user-info of a provider URL) is remembered when the configuration is
read and whenever a request is resolved or a provider builds its auth header. `scrub` replaces
every remembered secret in a text, in each form in which a message may carry it: as is,
escaped the way `repr` of a str or of bytes and JSON escape it, percent-encoded, and inside a
Basic auth token. Error and status texts pass through `scrub` where they are made
(`errors.DeepResearchError`, the manager's status events), and `install_log_scrubbing` applies
it to every log record, tracebacks included. Pure module: no tornado, no jupyter.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from typing import Any, NamedTuple
from urllib.parse import quote, quote_plus, unquote

from pydantic import SecretStr

MASK = "***"
# Shorter strings are not credentials one could guess from a log, and replacing them would
# garble every message (a two-letter password occurs in most words).
MIN_SECRET_CHARS = 4

_lock = threading.Lock()
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None


def remember(*secrets: str | SecretStr | None) -> None:
    """Add secrets to those `scrub` removes (for the life of the process; they are few)."""
    values = {_value(s) for s in secrets} - {""}
    global _pattern
    with _lock:
        fresh = values - _known
        if not fresh:
            return
        _known.update(fresh)
        forms = {form for secret in _known for form in _forms(secret)}
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(forms, key=lambda form: (-len(form), form))
        _pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None


def scrub(text: str) -> str:
    """`text` with every remembered secret, in any of its known forms, replaced by `***`."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def _value(secret: str | SecretStr | None) -> str:
    if secret is None:
        return ""
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


def _forms(secret: str) -> set[str]:
    """The spellings under which `secret` may appear in a message."""
    forms = {secret, secret.strip()}
    forms.add(repr(secret)[1:-1])
    forms.add(repr(secret.encode("utf-8", "backslashreplace"))[2:-1])
    forms.add(json.dumps(secret)[1:-1])
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    forms.add(quote(secret, safe=""))
    forms.add(quote(secret))
    forms.add(quote_plus(secret))
    return {form for form in forms if len(form) >= MIN_SECRET_CHARS}


# ------------------------------------------------------------------ URL user-info


class SplitURL(NamedTuple):
    """A URL without its user-info, and the credentials that user-info held (if any)."""

    url: str
    username: str | None
    password: str | None
    userinfo: str | None  # as written in the URL (percent-encoded)

    @property
    def basic_token(self) -> str | None:
        """`base64(user:password)` for an `Authorization: Basic` header, if there were any."""
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}"
        return base64.b64encode(raw.encode()).decode("ascii")


# scheme "://" (optional), then the authority up to the first "/", "?" or "#".
_AUTHORITY = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://|//)?(?P<authority>[^/?#]*)")


def split_userinfo(url: str) -> SplitURL:
    """Cut `user:password@` out of a URL (as URL parsers do: up to the last `@`).

    Lenient on purpose: it also redacts what no URL parser accepts, so nothing that looks like
    credentials is ever shown.
    """
    match = _AUTHORITY.match(url)
    assert match is not None  # every part of the pattern is optional
    authority = match["authority"]
    if "@" not in authority:
        return SplitURL(url, None, None, None)
    userinfo, _, host = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    clean = (match["scheme"] or "") + host + url[match.end() :]
    return SplitURL(clean, unquote(user), unquote(password) if colon else None, userinfo)


def has_userinfo(url: str | None) -> bool:
    """True when the URL carries `user[:password]@`."""
    return bool(url) and split_userinfo(url or "").username is not None


def redact_url(url: str) -> str:
    """The URL without user-info: what is stored, shown and written into messages."""
    return split_userinfo(url).url


def remember_url(url: str | None) -> None:
    """Remember the credentials in a URL's user-info as secrets."""
    if not url:
        return
    parts = split_userinfo(url)
    if parts.username is None:
        return
    # The password is the secret; a user-info without one is a token in the user name. The user
    # name alone is not remembered when a password follows: it is often a common word.
    secret = parts.password if parts.password else parts.username
    remember(secret, parts.userinfo, parts.basic_token)


# ------------------------------------------------------------------ logging


def scrub_record(record: logging.LogRecord) -> None:
    """Scrub remembered secrets from a log record's message, traceback and stack, in place."""
    if _pattern is None:
        return
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is logging's problem to report, not ours
        return
    clean = scrub(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[0] is not None:
        text = record.exc_text or logging.Formatter().formatException(record.exc_info)
        clean = scrub(text)
        if clean != text:
            # Formatters print `exc_text` as it is; without `exc_info` none formats it anew.
            record.exc_text, record.exc_info = clean, None
    elif record.exc_text:
        record.exc_text = scrub(record.exc_text)
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)


def install_log_scrubbing() -> None:
    """Scrub every log record of this process as it is made (idempotent).

    A record factory rather than a filter on our loggers: the secrets also reach other
    libraries' records (httpcore logs a refused header at DEBUG, tornado and asyncio log
    tracebacks), and filters on a logger do not apply to records of its children.
    """
    with _lock:
        previous = logging.getLogRecordFactory()
        if getattr(previous, "_scrubs_secrets", False):
            return

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            scrub_record(record)
            return record

        factory._scrubs_secrets = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(factory)
