"""HTTP plumbing shared by the network providers: client, retries with backoff, clear errors.

Every error raised here is an `errors.ResearchError` whose message a user can act on and which
never contains a secret: messages are built from the base URL without its user-info, the model
name and the status, and texts taken from elsewhere (a server's error body, an exception) are
scrubbed of known secrets before they are shortened.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable
from typing import NamedTuple, TypeVar

import anyio
import httpx
from pydantic import SecretStr

from ..errors import BadRequest, MissingCredentials, ResearchError
from ..redact import has_userinfo, remember, remember_url, scrub, split_userinfo
from .base import RunOptions

if sys.version_info < (3, 11):  # anyio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

T = TypeVar("T")
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

log = logging.getLogger(__name__)


class Endpoint(NamedTuple):
    """Where a provider connects, and how it authenticates there."""

    url: str  # the base URL without user-info or trailing slash: safe to show
    headers: dict[str, str]  # `Authorization` from the key, else from the URL's user-info

    @property
    def has_key(self) -> bool:
        return "Authorization" in self.headers


def endpoint(base_url: str | None, api_key: SecretStr | None) -> Endpoint:
    """Split a configured base URL into what is shown and what authenticates.

    Credentials in the URL (`http://user:password@host/v1`) become a Basic auth header, as
    HTTP clients do with them; the URL keeps no trace of them.
    """
    parts = split_userinfo((base_url or "").strip())
    key = api_key.get_secret_value() if api_key else None
    remember(key)
    remember_url(base_url)
    headers = {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    elif parts.basic_token:
        headers["Authorization"] = f"Basic {parts.basic_token}"
    return Endpoint(parts.url.rstrip("/"), headers)


def check_base_url(section: str, base_url: str, api_key: SecretStr | None) -> None:
    """BadRequest unless `base_url` is an http(s) URL with at most one kind of credentials."""
    if not re.match(r"^https?://[^/\s]+", base_url):
        raise BadRequest(f"{section}.base_url: must be an http:// or https:// URL")
    if api_key and has_userinfo(base_url):
        raise BadRequest(
            f"{section}.base_url: holds credentials (user:password@) and {section}.api_key is "
            "set too; give one of them"
        )


class RetryableStatus(Exception):
    """A response worth retrying (429, 5xx); carries the server's `Retry-After` if any."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def make_client(options: RunOptions) -> httpx.AsyncClient:
    """An async client with the run's timeouts; no redirects into other hosts' secrets."""
    timeout = httpx.Timeout(options.timeout, connect=options.connect_timeout)
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=True)


def retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds when given as a number."""
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def with_retries(call: Callable[[], Awaitable[T]], *, options: RunOptions, service: str) -> T:
    """Await `call()`, retrying on `RetryableStatus` with exponential backoff.

    Transport failures become `ResearchError`s that name `service` (a base URL) and the cause.
    """
    attempt = 0
    while True:
        try:
            return await call()
        except RetryableStatus as exc:
            attempt += 1
            if attempt > options.retries:
                raise ResearchError(
                    f"{service} kept answering HTTP {exc.status} after {attempt} attempts; "
                    "it is overloaded or failing, try again later."
                ) from None
            delay = options.backoff * 2 ** (attempt - 1)
            if exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            delay = min(delay, options.max_backoff)
            log.info("%s answered HTTP %s; retry %d in %.2fs", service, exc.status, attempt, delay)
            await anyio.sleep(delay)
        except httpx.ConnectError as exc:
            raise ResearchError(
                f"Could not connect to {service}: {_reason(exc)}. Is the server running and is "
                "the base_url right?"
            ) from None
        except httpx.TimeoutException:
            raise ResearchError(
                f"{service} did not answer within {options.timeout:g} "
                f"second{'' if options.timeout == 1 else 's'} (timeout). "
                "The server may be overloaded, or the model still loading."
            ) from None
        except httpx.HTTPError as exc:
            raise ResearchError(f"Request to {service} failed: {_reason(exc)}.") from None


def _reason(exc: BaseException) -> str:
    """The cause in a few words; httpx hides "connection refused" in the exception chain."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        text = str(seen).lower()
        if isinstance(seen, ConnectionRefusedError) or "refused" in text or "errno 111" in text:
            return "connection refused"
        seen = seen.__cause__ or seen.__context__
        # anyio and httpcore wrap OS errors inside exception groups.
        if isinstance(seen, BaseExceptionGroup) and seen.exceptions:
            seen = seen.exceptions[0]
    # Scrubbed before it is cut short: a cut secret would no longer be recognised.
    text = scrub(str(exc)) or type(exc).__name__
    return text.split("\n", 1)[0][:200]


def raise_for_status(
    response: httpx.Response,
    *,
    service: str,
    has_key: bool,
    key_field: str,
    body: str = "",
    not_found: str | None = None,
) -> None:
    """Map an error status to `RetryableStatus`, `MissingCredentials` or `ResearchError`."""
    status = response.status_code
    if status < 400:
        return
    if status in RETRY_STATUSES:
        raise RetryableStatus(status, retry_after(response))
    if status == 401:
        if not has_key:
            raise MissingCredentials(
                f"{service} requires an API key (HTTP 401): set {key_field} in the request "
                "or in the server's configuration."
            )
        raise ResearchError(f"The API key was rejected by {service} (HTTP 401): check {key_field}.")
    if status == 404 and not_found:
        raise ResearchError(not_found)
    detail = _detail(scrub(body))  # some servers echo what they were sent
    raise ResearchError(
        f"{service} rejected the request (HTTP {status})" + (f": {detail}" if detail else ".")
    )


def _detail(body: str) -> str:
    """A short human message from an error body (OpenAI-style `{"error": {"message"}}`)."""
    try:
        data = json.loads(body)
    except ValueError:
        return " ".join(body.split())[:200]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail") or ""
            return " ".join(str(msg).split())[:200]
        if isinstance(err, str):
            return err[:200]
    return ""
