"""Hypothesis against a live server: odd bodies, counts, filters and ids get a 4xx, never a 5xx.

Schemathesis (test_fault_schemathesis.py) generates from the OpenAPI document, so it rarely
builds what the document does not describe: bodies nested a thousand deep, digits that are not
ASCII ("²", "٣"), numbers thousands of digits long. Those found 500s here (issue 11, items 4
and 5). Each test is bounded: a fixed number of examples, and every request has a timeout, so
a hang fails the test instead of stalling the run.
"""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dr_testing.servers import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SETTINGS = {"pipeline": "dr_testing.pipelines:stepped", "flush_interval": 0.05}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run and machine
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REQUEST_TIMEOUT = 30.0  # seconds; a request that takes longer counts as a hang


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("fuzz-inputs")
    server = ServerProcess(base / "srv", base / "tasks", settings=SETTINGS).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live_server: ServerProcess) -> Any:
    with live_server.client(timeout=REQUEST_TIMEOUT) as client:
        yield client


@pytest.fixture(scope="module")
def task_id(client: httpx.Client) -> str:
    """A finished task, so `events` answers at once whatever resume point it gets."""
    response = client.post("tasks", json={"query": "fuzz inputs units=1"})
    assert response.status_code == 201, response.text
    task_id = str(response.json()["task_id"])
    with client.stream("GET", f"tasks/{task_id}/events") as stream:
        stream.read()  # follows until the task ends
    return task_id


def assert_client_error(response: httpx.Response, *allowed: int) -> None:
    """A 4xx with a JSON `message`, or one of the `allowed` successes; never a 5xx."""
    if response.status_code in allowed:
        return
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:300]
    assert response.json()["message"]


# ------------------------------------------------------------------ bodies nested deep

OPENERS = {"arrays": ("[", "]"), "objects": ('{"k":', "}")}
# Shallow ones pass Python's json and meet pydantic's own limit; deep ones hit the interpreter's.
DEPTHS = st.one_of(st.integers(1, 64), st.integers(200, 1_500), st.integers(1_500, 50_000))
WHERE = st.sampled_from(["top", "query", "ai", "search", "report", "search.sources", "restart"])


def nested_body(depth: int, kind: str, where: str) -> bytes:
    """`{"query": "x", <where>: <depth levels>}` built as text (no recursion on our side)."""
    opener, closer = OPENERS[kind]
    inner = opener * depth + ("1" if kind == "objects" else "") + closer * depth
    if where == "top":
        return inner.encode()
    if where == "search.sources":
        return ('{"query":"x","search":{"sources":' + inner + "}}").encode()
    return ('{"query":"x","' + where + '":' + inner + "}").encode()


@FUZZ
@given(
    depth=DEPTHS,
    kind=st.sampled_from(sorted(OPENERS)),
    where=WHERE,
    route=st.sampled_from(["tasks", "research"]),
)
def test_nested_bodies_are_a_4xx(
    client: httpx.Client, depth: int, kind: str, where: str, route: str
) -> None:
    response = client.post(route, content=nested_body(depth, kind, where))
    assert_client_error(response)


# ------------------------------------------------------------------ counts and filters

# Digits of every script and form (`str.isdigit` is true for "²" and "①", which `int` refuses;
# `int` reads "٣"), numbers past 64 bits and past `int`'s 4,300 digits, numbers of any sign, and
# anything else a query string can carry.
UNICODE_DIGITS = st.text(
    st.characters(categories=["Nd", "No"]).filter(str.isdigit), min_size=1, max_size=6
)
HUGE = st.one_of(st.integers(15, 25), st.integers(4_000, 6_000)).map(lambda n: "9" * n)
NUMBERS = st.integers(-(10**40), 10**40).map(str)
ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
ODD_VALUES = st.one_of(UNICODE_DIGITS, HUGE, NUMBERS, ANY_TEXT)


@FUZZ
@given(
    limit=st.one_of(st.none(), ODD_VALUES),
    status=st.one_of(st.none(), st.sampled_from(["queued", "completed", "Done"]), ANY_TEXT),
)
def test_list_filters_are_a_4xx(
    client: httpx.Client, limit: str | None, status: str | None
) -> None:
    params = {name: value for name, value in (("limit", limit), ("status", status)) if value}
    assert_client_error(client.get("tasks", params=params), 200)


# What a client can put in a header: no control characters, and no white space at either end
# (HTTP strips it, and the client refuses to send it).
HEADER_TEXT = st.text(
    st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="\x7f"), max_size=30
).map(lambda value: value.strip(" \t"))


@FUZZ
@given(
    after=st.one_of(st.none(), ODD_VALUES),
    last_event_id=st.one_of(st.none(), UNICODE_DIGITS, HUGE, NUMBERS, HEADER_TEXT),
)
def test_resume_points_are_a_4xx(
    client: httpx.Client, task_id: str, after: str | None, last_event_id: str | None
) -> None:
    params = {"follow": "false", **({"after": after} if after is not None else {})}
    # Header values go as UTF-8 bytes, as a browser sends them; the name is bytes too because
    # httpx types a headers mapping as all-str or all-bytes (it sends the same ASCII name).
    headers = {b"Last-Event-ID": last_event_id.encode()} if last_event_id is not None else {}
    response = client.get(f"tasks/{task_id}/events", params=params, headers=headers)
    assert_client_error(response, 200, 204)


CALLS = itertools.count()


@FUZZ
@given(last_event_id=st.one_of(UNICODE_DIGITS, HUGE, HEADER_TEXT))
def test_research_never_creates_a_task_it_then_refuses(
    client: httpx.Client, last_event_id: str
) -> None:
    before = len(client.get("tasks").json()["tasks"])
    # A new query on every call, replays included: a task left by an earlier call of the same
    # example must not hide (or fake) one created by this call.
    body = {"query": f"resume point {next(CALLS)} {last_event_id!r} units=1"}
    headers = {b"Last-Event-ID": last_event_id.encode()}
    with client.stream("POST", "research", json=body, headers=headers) as response:
        if response.status_code < 300:
            return  # a valid resume point: it streams (and created the task, rightly)
        response.read()
    assert_client_error(response)
    assert len(client.get("tasks").json()["tasks"]) == before


# ------------------------------------------------------------------ task ids

IDS = st.one_of(
    st.from_regex(r"[a-z0-9_-]{1,128}", fullmatch=True),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=140),
    st.sampled_from(["..", ".", "abc123def456", "A" * 32, "a:b", "a*", "x" * 129]),
)


def segment(text: str) -> str:
    """`text` as one path segment; dots escaped too, or the client would resolve `..`."""
    return quote(text, safe="").replace(".", "%2E")


@FUZZ
@given(task=IDS, action=st.sampled_from(["", "/events", "/pause", "/resume", "/cancel"]))
def test_any_task_id_is_a_4xx(client: httpx.Client, task: str, action: str) -> None:
    method = "POST" if action in ("/pause", "/resume", "/cancel") else "GET"
    response = client.request(method, f"tasks/{segment(task)}{action}")
    assert_client_error(response)


def test_server_logged_no_traceback(live_server: ServerProcess, client: httpx.Client) -> None:
    """Runs last in this module: nothing above made the server fail unexpectedly."""
    assert client.get("health").status_code == 200
    log = live_server.log()
    assert "Traceback" not in log, log[log.find("Traceback") :][:3000]
