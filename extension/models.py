"""Request and response shapes. Pure: imports neither tornado nor jupyter_server."""

from __future__ import annotations

import posixpath
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .lifecycle import Status as Status  # re-exported: it has always been imported from here
from .redact import redact_url

MAX_QUERY_CHARS = 10_000
# For the OpenAPI document; the validators below say the same in words.
NOT_BLANK = r"\S"
FOLDER_NAME = r"^[^\u0000]*\S[^\u0000]*$"


class _Strict(BaseModel):
    # Unknown fields are a client error; JSON types are not coerced ("3" is not an int).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def clean_secret(value: SecretStr | None) -> SecretStr | None:
    """A key as it can go into an HTTP header: surrounding white space (a key read from a file
    with its newline) stripped, empty as none; other control or non-ASCII characters refused
    with a message that does not repeat the value."""
    if value is None:
        return None
    text = value.get_secret_value().strip()
    if not text:
        return None
    if not all(" " <= ch <= "~" for ch in text):
        raise ValueError(
            "contains a control character or a character outside printable ASCII, which "
            "cannot go into an HTTP header (the value is not shown)"
        )
    return SecretStr(text)


class AISettings(_Strict):
    """Which language model writes the plan, queries, learnings and report."""

    provider: str = "extractive"
    model: str | None = None
    base_url: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    api_key: SecretStr | None = None
    # Optional split like the original app: a stronger model plans and writes, a faster one
    # generates queries and learnings. Both default to `model`.
    thinking_model: str | None = None
    task_model: str | None = None

    _clean_key = field_validator("api_key")(clean_secret)


class SearchSettings(_Strict):
    """Which search engine finds sources, and where the local one looks."""

    provider: str = "local"
    max_results: int = Field(default=5, ge=1, le=50)
    sources: tuple[str, ...] = Field(
        default=(),
        json_schema_extra={"items": {"type": "string", "pattern": FOLDER_NAME}},
    )
    base_url: str | None = None
    api_key: SecretStr | None = None

    _clean_key = field_validator("api_key")(clean_secret)

    @field_validator("sources", mode="before")
    @classmethod
    def _sources_as_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("sources")
    @classmethod
    def _normalise_sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Order and spelling of folder names do not change what is searched, so they must not
        # change the task id either. Whether a folder lies inside the root is checked later,
        # where the root directory is known.
        cleaned = set()
        for raw in value:
            path = raw.strip().replace("\\", "/")
            if not path:
                raise ValueError("a source folder name is empty")
            if "\x00" in path:
                raise ValueError("a source folder name contains a NUL character")
            cleaned.add(posixpath.normpath(path))
        return tuple(sorted(cleaned))


class ReportSettings(_Strict):
    """Shape of the research: queries per round, rounds, and the report's language."""

    language: str = Field(default="en", min_length=1, max_length=40)
    breadth: int = Field(default=3, ge=1, le=10)
    depth: int = Field(default=1, ge=1, le=5)


class ResearchRequest(_Strict):
    """Body of `POST tasks` and `POST research`."""

    query: str = Field(
        min_length=1, max_length=MAX_QUERY_CHARS, json_schema_extra={"pattern": NOT_BLANK}
    )
    ai: AISettings = AISettings()
    search: SearchSettings = SearchSettings()
    report: ReportSettings = ReportSettings()
    restart: bool = False

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is empty or only white space")
        return value


def validation_message(error: ValidationError) -> str:
    """One readable sentence per problem, each naming the field path (`ai.temperature`)."""
    parts = []
    for item in error.errors():
        location = ".".join(str(p) for p in item["loc"]) or "body"
        if item["type"] == "extra_forbidden":
            parts.append(f"{location}: unknown field")
        else:
            parts.append(f"{location}: {item['msg']}")
    return "Invalid request: " + "; ".join(parts)


def secret_fields(model: type[BaseModel]) -> set[str]:
    """Names of a model's secret (`SecretStr`) fields."""
    return {
        name
        for name, field in model.model_fields.items()
        if _is_secret_annotation(field.annotation)
    }


def public_dump(model: BaseModel) -> dict[str, Any]:
    """JSON-ready dict of a settings model: secret fields left out, URL user-info removed."""
    data = model.model_dump(mode="json", exclude=secret_fields(type(model)))
    if isinstance(data.get("base_url"), str):
        data["base_url"] = redact_url(data["base_url"])
    return data


def public_request(request: ResearchRequest) -> dict[str, Any]:
    """The request as stored and shown: secrets removed, `restart` dropped."""
    return {
        "query": request.query,
        "ai": public_dump(request.ai),
        "search": public_dump(request.search),
        "report": public_dump(request.report),
    }


def _is_secret_annotation(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return SecretStr in getattr(annotation, "__args__", ())


class SourceRef(BaseModel):
    """One numbered source of a report."""

    id: str
    title: str
    url: str


# Why a claim is not supported: its passages do not say it, it cites nothing, or it cites a
# number that names no source.
CitationProblem = Literal["unsupported", "uncited", "unknown_source"]


class CitationCheck(BaseModel):
    """One claim of a report and whether the passages it cites support it."""

    claim: str
    sources: list[int] = []  # the citation numbers the claim carries, as written
    supported: bool
    score: float  # lexical support 0..1 of the claim's weakest sentence by its cited passages
    problem: CitationProblem | None = None  # None when supported


class ResearchResult(BaseModel):
    """What a completed task holds: the Markdown report and its numbered sources.

    `citations` and `citation_support` (the share of supported claims; None when the report
    makes no claim) come from the citation check; results stored before it have neither.
    """

    report: str
    sources: list[SourceRef] = []
    citations: list[CitationCheck] = []
    citation_support: float | None = Field(default=None, ge=0.0, le=1.0)


class TaskInfo(BaseModel):
    """Public view of a task, as every route returns it."""

    task_id: str
    status: Status
    step: str = ""
    percentage: int = 0
    message: str = ""
    created_at: datetime
    updated_at: datetime
    request: dict[str, Any]
    last_event_id: int = 0
    attempts: int = 0
    owner: str | None = None
    result: ResearchResult | None = None
    error: str | None = None
