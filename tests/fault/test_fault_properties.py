"""Hypothesis properties: task ids ignore what must not matter, SSE frames survive any chunking."""

from __future__ import annotations

import codecs
import itertools
import json
import re
from typing import Any, Literal

from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from jupyter_deepresearch.extension.fingerprint import task_id_for
from jupyter_deepresearch.extension.models import ResearchRequest
from jupyter_deepresearch.extension.sse import encode_comment, encode_event, encode_retry

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ fingerprint

WORDS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Cc", "Zl", "Zp")),
    min_size=1,
    max_size=12,
)
# Every character `str.split()` treats as white space, as a request could carry it.
SPACE = st.sampled_from([" ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\x0b", "\x0c", "\u2028"])
SETTINGS_AI = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["m1", "llama3.1", "gpt-x"]),
        "temperature": st.sampled_from([0.0, 0.5, 1.5]),
        "base_url": st.sampled_from(["http://127.0.0.1:9/v1", "http://localhost:11434/v1"]),
    },
)
SETTINGS_SEARCH = st.fixed_dictionaries(
    {},
    optional={
        "max_results": st.integers(1, 50),
        "sources": st.lists(st.sampled_from(["docs", "notes/a", "x"]), max_size=3, unique=True),
    },
)
SETTINGS_REPORT = st.fixed_dictionaries(
    {},
    optional={
        "language": st.sampled_from(["en", "de", "zh"]),
        "breadth": st.integers(1, 10),
        "depth": st.integers(1, 5),
    },
)
BODIES = st.fixed_dictionaries(
    {
        "words": st.lists(WORDS, min_size=1, max_size=6),
        "ai": SETTINGS_AI,
        "search": SETTINGS_SEARCH,
        "report": SETTINGS_REPORT,
    }
)
DEFAULTS: dict[str, dict[str, Any]] = {
    "ai": {"provider": "extractive", "model": None, "base_url": None, "temperature": None},
    "search": {"provider": "local", "max_results": 5, "sources": [], "base_url": None},
    "report": {"language": "en", "breadth": 3, "depth": 1},
}


def request_of(words: list[str], ai: dict, search: dict, report: dict, sep: str = " ") -> Any:
    body = {"query": sep.join(words), "ai": ai, "search": search, "report": report}
    return ResearchRequest.model_validate_json(json.dumps(body))


def tid(body: dict[str, Any], **overrides: Any) -> str:
    parts = {**body, **overrides}
    return task_id_for(request_of(parts["words"], parts["ai"], parts["search"], parts["report"]))


@PROPS
@given(body=BODIES, seps=st.lists(st.lists(SPACE, min_size=1, max_size=3), min_size=7))
def test_white_space_never_changes_the_task_id(body: dict[str, Any], seps: list) -> None:
    words = body["words"]
    spaced = seps[0][0] + "".join(w + "".join(seps[i + 1]) for i, w in enumerate(words))
    request = ResearchRequest.model_validate_json(
        json.dumps({"query": spaced, **{k: body[k] for k in ("ai", "search", "report")}})
    )
    assert task_id_for(request) == tid(body)


@PROPS
@given(body=BODIES, data=st.data())
def test_key_order_and_json_layout_never_change_the_task_id(body: dict[str, Any], data) -> None:
    doc = {"query": " ".join(body["words"]), **{k: body[k] for k in ("ai", "search", "report")}}

    def shuffled(value: Any) -> Any:
        if isinstance(value, dict):
            keys = data.draw(st.permutations(list(value)))
            return {k: shuffled(value[k]) for k in keys}
        return value

    text = json.dumps(shuffled(doc), indent=data.draw(st.sampled_from([None, 1, 4])))
    assert task_id_for(ResearchRequest.model_validate_json(text)) == tid(body)


@PROPS
@given(body=BODIES, data=st.data())
def test_explicit_defaults_never_change_the_task_id(body: dict[str, Any], data) -> None:
    spelled = {}
    for section, defaults in DEFAULTS.items():
        names = data.draw(st.lists(st.sampled_from(sorted(defaults)), unique=True))
        spelled[section] = {**{n: defaults[n] for n in names}, **body[section]}
    assert tid(body, **spelled) == tid(body)


@PROPS
@given(
    body=BODIES,
    # Keys an HTTP header can carry (others are refused with a 400: tests/server/test_secrets.py).
    key=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
    restart=st.booleans(),
    where=st.sampled_from(["ai", "search", "both"]),
)
def test_secrets_and_restart_never_change_the_task_id(
    body: dict[str, Any], key: str, restart: bool, where: str
) -> None:
    ai = {**body["ai"], "api_key": key} if where in ("ai", "both") else body["ai"]
    search = {**body["search"], "api_key": key} if where in ("search", "both") else body["search"]
    doc = {"query": " ".join(body["words"]), "ai": ai, "search": search}
    doc.update(report=body["report"], restart=restart)
    assert task_id_for(ResearchRequest.model_validate_json(json.dumps(doc))) == tid(body)


SEMANTIC_CHANGES = st.sampled_from(
    [
        ("ai", "model", "another-model"),
        ("ai", "temperature", 1.99),
        ("ai", "provider", "openai-compatible"),
        ("ai", "base_url", "http://127.0.0.1:1/v2"),
        ("search", "max_results", 49),
        ("search", "sources", ["only-here"]),
        ("search", "provider", "searxng"),
        ("report", "language", "fr"),
        ("report", "breadth", 9),
        ("report", "depth", 4),
    ]
)


@PROPS
@given(body=BODIES, change=SEMANTIC_CHANGES)
def test_any_semantic_setting_change_changes_the_task_id(body: dict[str, Any], change) -> None:
    section, name, value = change
    assume(body[section].get(name) != value)
    assert tid(body, **{section: {**body[section], name: value}}) != tid(body)


@PROPS
@given(body=BODIES, index=st.integers(0, 5), extra=WORDS, case=st.booleans())
def test_any_query_change_changes_the_task_id(
    body: dict[str, Any], index: int, extra: str, case: bool
) -> None:
    words = list(body["words"])
    index %= len(words)
    changed = words[index].swapcase() if case else words[index] + extra
    assume(changed != words[index])
    words[index] = changed
    assert tid(body, words=words) != tid(body)


def test_nfc_and_nfd_spellings_are_one_task() -> None:
    nfc = request_of(["caf\u00e9", "au", "lait"], {}, {}, {})
    nfd = request_of(["cafe\u0301", "au", "lait"], {}, {}, {})
    assert task_id_for(nfc) == task_id_for(nfd)


def test_owner_scopes_the_task_id() -> None:
    request = request_of(["same", "question"], {}, {}, {})
    assert task_id_for(request, "alice") != task_id_for(request, "bob")
    assert task_id_for(request, "alice") != task_id_for(request)


# ------------------------------------------------------------------ SSE encoder round trip

# Typed, because mypy infers a bare ("Cs",) as tuple[str], not hypothesis's category Literal.
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)

ANY_TEXT = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=SURROGATES), max_size=30),
        st.sampled_from(["\n", "\r", "\r\n", "\n\n", "\r\r", "\u2028", "\x85", ": ", "data:"]),
    ),
    max_size=8,
).map("".join)
EVENT_NAMES = st.text(
    alphabet=st.characters(blacklist_categories=SURROGATES, blacklist_characters="\r\n"),
    min_size=1,
    max_size=20,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | ANY_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children),
    max_leaves=12,
)


def decode_chunks(chunks: list[bytes]) -> list[Any]:
    """Decode a byte stream as httpx + httpx-sse do: incremental UTF-8, lines, events."""
    text = codecs.getincrementaldecoder("utf-8")()
    lines, events = SSELineDecoder(), SSEDecoder()
    out = []
    pieces = [text.decode(chunk) for chunk in chunks] + [text.decode(b"", final=True)]
    for piece in pieces:
        for line in lines.decode(piece) if piece else []:
            event = events.decode(line)
            if event is not None:
                out.append(event)
    for line in lines.flush():
        event = events.decode(line)
        if event is not None:
            out.append(event)
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(
        st.tuples(EVENT_NAMES, st.one_of(ANY_TEXT, JSON_VALUES.map(lambda v: {"v": v}))),
        min_size=1,
        max_size=5,
    ),
    cuts=st.lists(st.integers(0, 10_000), max_size=40),
    comments=st.lists(ANY_TEXT, max_size=2),
)
def test_encoded_events_survive_any_chunking(
    events: list[tuple[str, Any]], cuts: list[int], comments: list[str]
) -> None:
    stream = encode_retry(3000)
    for text in comments:
        stream += encode_comment(text)
    for number, (name, data) in enumerate(events, start=1):
        stream += encode_event(number, name, data)
        stream += encode_comment("keepalive")
    everything = decode_chunks(split_at(stream, cuts))
    # httpx-sse dispatches the `retry:` block as an empty event (browsers do not); comments
    # never make a phantom event.
    assert everything[0].retry == 3000
    assert everything[0].data == "" and everything[0].id == ""
    decoded = everything[1:]
    assert len(decoded) == len(events)
    for number, ((name, data), sse) in enumerate(zip(events, decoded, strict=True), start=1):
        assert sse.id == str(number)
        assert sse.event == name
        if isinstance(data, str):
            # SSE carries line breaks as line ends: CR and CRLF come back as LF, nothing else
            # changes (JSON payloads never contain a raw line break, so they are exact).
            assert sse.data == re.sub(r"\r\n|\r", "\n", data)
        else:
            assert json.loads(sse.data) == data


@PROPS
@given(
    head=st.text(max_size=5), brk=st.sampled_from(["\n", "\r", "\r\n"]), tail=st.text(max_size=5)
)
def test_event_names_with_line_breaks_are_refused(head: str, brk: str, tail: str) -> None:
    name = head + brk + tail
    try:
        encode_event(1, name, {})
    except ValueError:
        return
    raise AssertionError("an event name with a line break was encoded")
