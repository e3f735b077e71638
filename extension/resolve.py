"""How a request becomes the one a task runs: server defaults under it, configured secrets only
for the URL configured with them, and provider URLs only from the allowed list. Pure module.

Rules (DESIGN.md, "Limits and trust"):

- The server's `default_ai` / `default_search` apply to a section unless the request picks
  another provider.
- A configured secret (`api_key`, user-info in the configured `base_url`) is only ever sent to
  the `base_url` configured with it. A request that leaves `base_url` out, or repeats the
  configured one (same scheme, host, port and path), keeps it; a request that names another
  URL, or brings credentials of its own in the URL, brings its own key or none.
- With `allowed_base_urls` set, a `base_url` that matches none of its glob patterns is refused
  (403), unless it is the configured default of that section: the administrator set that one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr, ValidationError

from .errors import BadRequest, Forbidden
from .models import ResearchRequest, secret_fields, validation_message
from .redact import has_userinfo, redact_url, remember, remember_url

SECTIONS = ("ai", "search")
DEFAULT_PORTS = {"http": 80, "https": 443}


def endpoint(url: str) -> str:
    """The URL as compared and matched: no user-info, scheme and host in lower case, no default
    port, no trailing slash, no fragment."""
    clean = redact_url(url.strip())
    try:
        parts = urlsplit(clean)
        port = parts.port
    except ValueError:  # not a URL any provider could reach; compare it as written
        return clean.rstrip("/")
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def same_endpoint(a: str | None, b: str | None) -> bool:
    """True when both URLs name the same endpoint (or both are absent)."""
    if not a or not b:
        return not a and not b
    return endpoint(a) == endpoint(b)


class RequestResolver:
    """Applies the server's defaults, key routing and URL allow-list to requests."""

    def __init__(
        self,
        default_ai: Mapping[str, Any] | None = None,
        default_search: Mapping[str, Any] | None = None,
        allowed_base_urls: Iterable[str] = (),
    ) -> None:
        self.defaults = {"ai": dict(default_ai or {}), "search": dict(default_search or {})}
        self.allowed_base_urls = tuple(p.strip() for p in allowed_base_urls if p.strip())
        for defaults in self.defaults.values():
            _remember_secrets(defaults)

    def resolve(self, request: ResearchRequest) -> ResearchRequest:
        """The request with defaults applied; BadRequest (400) or Forbidden (403) if refused."""
        sections = {name: self._merge(name, getattr(request, name)) for name in SECTIONS}
        for name, merged in sections.items():
            self._check_allowed(name, merged.get("base_url"))
        try:
            resolved = request.model_validate(
                {
                    "query": request.query,
                    **sections,
                    "report": request.report,
                    "restart": request.restart,
                },
                strict=False,
            )
        except ValidationError as error:
            raise BadRequest(validation_message(error)) from None
        for name in SECTIONS:
            settings = getattr(resolved, name)
            remember(settings.api_key)
            remember_url(settings.base_url)
        return resolved

    def _merge(self, section: str, given: BaseModel) -> dict[str, Any]:
        defaults = self.defaults[section]
        secrets = secret_fields(type(given))
        explicit = given.model_dump(exclude_unset=True)
        for name in secrets & explicit.keys():
            if isinstance(explicit[name], SecretStr):
                explicit[name] = explicit[name].get_secret_value()
        provider = explicit.get("provider")
        if provider is not None and provider != defaults.get("provider", provider):
            return explicit
        merged = {**defaults, **explicit}
        if "base_url" in explicit:
            wanted, configured = explicit["base_url"], defaults.get("base_url")
            if not same_endpoint(wanted, configured) or has_userinfo(wanted):
                # The request chose where to connect, or brought its own credentials: the
                # configured secrets stay with the configured URL.
                for name in secrets - explicit.keys():
                    merged.pop(name, None)
            elif configured:
                merged["base_url"] = configured  # with the configured user-info, if any
        return merged

    def _check_allowed(self, section: str, url: Any) -> None:
        if not self.allowed_base_urls or not isinstance(url, str) or not url.strip():
            return
        if same_endpoint(url, self.defaults[section].get("base_url")):
            return
        key = endpoint(url)
        if any(fnmatchcase(key, p.rstrip("/") or p) for p in self.allowed_base_urls):
            return
        raise Forbidden(
            f"{section}.base_url: {redact_url(url)} is not a provider URL this server allows; "
            "its administrator lists the allowed ones in DeepResearchApp.allowed_base_urls "
            "(leave base_url out to use the server's default)."
        )


def _remember_secrets(settings: Mapping[str, Any]) -> None:
    key = settings.get("api_key")
    if isinstance(key, (str, SecretStr)):
        remember(key)
    url = settings.get("base_url")
    if isinstance(url, str):
        remember_url(url)
