"""Schemathesis over our OpenAPI 3.1 document against a live server: no 5xx, responses conform."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import checks  # noqa: E402

from dr_testing.servers import ServerProcess  # noqa: E402

pytestmark = pytest.mark.slow

SETTINGS = {"pipeline": "dr_testing.pipelines:stepped", "flush_interval": 0.05}
EXAMPLES = 50  # per operation: 10 operations, under a minute in all


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("schemathesis")
    server = ServerProcess(base / "srv", base / "tasks", settings=SETTINGS).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_schema(live_server: ServerProcess) -> Any:
    auth = {"Authorization": f"token {live_server.token}"}
    schema = schemathesis.openapi.from_url(f"{live_server.url}openapi.json", headers=auth)
    schema.config.update(base_url=f"http://127.0.0.1:{live_server.port}", headers=auth)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi_document(case: Any, live_server: ServerProcess) -> None:
    excluded = [
        # Jupyter answers a request without credentials with 403 (its XSRF/token check), as
        # our document says, where this check expects 401.
        checks.missing_required_header,
        # Tornado's 405 lacks an `Allow` header: pinned by an xfail test below.
        checks.unsupported_method,
        # Some constraints are semantic (a source folder inside the root, a query that is not
        # only white space) and a schema cannot carry them all: pinned by xfail tests below.
        checks.positive_data_acceptance,
    ]
    if case.operation.path.endswith(("/events", "/research")):
        # The document gives the stream as one string; schemathesis validates each SSE event
        # against it. The events themselves are checked in tests/server/test_sse.py.
        excluded.append(checks.response_schema_conformance)
    case.call_and_validate(timeout=30, excluded_checks=excluded)


def test_bad_body_is_a_400_never_a_500(live_server: ServerProcess) -> None:
    bodies: list[Any] = ["", "[]", "null", '{"query": 5}', '{"query": "x", "ai": []}', "{" * 50]
    with live_server.client() as client:
        for raw in bodies:
            response = client.post("tasks", content=raw)
            assert response.status_code == 400, (raw, response.text)
            assert response.json()["message"]


@pytest.mark.xfail(
    strict=True,
    reason="bug (RFC 9110 15.5.6): a 405 response carries no `Allow` header listing the "
    "route's methods (tornado's default); schemathesis ST204",
)
def test_method_not_allowed_says_which_methods_are(live_server: ServerProcess) -> None:
    with live_server.client() as client:
        response = client.request("TRACE", "tasks")
    assert response.status_code == 405
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}


@pytest.mark.xfail(
    strict=True,
    reason="document gap: the OpenAPI schema lets `search.sources` items be empty or blank "
    "and `query` be only white space, which the server rejects with 400 (schemathesis "
    "ST202); add minLength/pattern `\\S` to the document",
)
@pytest.mark.parametrize(
    "body",
    [
        {"query": "x", "search": {"sources": [""]}},
        {"query": "   "},
    ],
)
def test_schema_valid_bodies_are_accepted(live_server: ServerProcess, body: Any) -> None:
    import jsonschema

    with live_server.client() as client:
        document = client.get("openapi.json").json()
        jsonschema.validate(
            body,
            {"$ref": "#/components/schemas/ResearchRequest", "components": document["components"]},
        )
        response = client.post("tasks", json=body)
    assert response.status_code in (200, 201), response.text


def test_live_server_stays_healthy(live_server: ServerProcess, tmp_path: Path) -> None:
    with live_server.client() as client:
        assert client.get("health").status_code == 200
    assert "Traceback" not in live_server.log()
