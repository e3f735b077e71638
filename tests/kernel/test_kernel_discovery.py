"""Server discovery in DESIGN.md's order; each path, and the message when none applies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kernel_fakes import FakeServer, Reply

from jupyter_deepresearch.kernel_helpers import ResearchClient, ServerNotFound, discover_server

EXT_ENV = {
    "JUPYTER_DEEPRESEARCH_URL": "http://127.0.0.1:9001/base/",
    "JUPYTER_DEEPRESEARCH_TOKEN": "ext-token",
}
HUB_ENV = {
    "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:9003/user/ada/",
    "JUPYTERHUB_SERVICE_PREFIX": "/user/ada/",
    "JUPYTERHUB_API_TOKEN": "hub-token",
}


def runtime_file(folder: Path, pid: int, **fields: object) -> Path:
    info: dict[str, object] = {
        "url": "http://localhost:9002/lab-base/",
        "base_url": "/lab-base/",
        "token": "rt",
    }
    info.update(fields)
    path = folder / f"jpserver-{pid}.json"
    path.write_text(json.dumps(info))
    return path


def test_explicit_arguments_come_first(tmp_path: Path) -> None:
    runtime_file(tmp_path, 42)
    env = {**EXT_ENV, **HUB_ENV, "JPY_PARENT_PID": "42"}
    found = discover_server("http://10.0.0.5:8888/x", "given", environ=env, runtime_dir=tmp_path)
    assert (found.url, found.token, found.source) == (
        "http://10.0.0.5:8888/x/",
        "given",
        "explicit arguments",
    )
    assert found.api_url == "http://10.0.0.5:8888/x/api/deepresearch/"
    assert found.headers == {"Authorization": "token given"}


def test_explicit_url_without_token_takes_the_environment_token() -> None:
    found = discover_server("http://127.0.0.1:1/", environ=EXT_ENV)
    assert found.token == "ext-token"


def test_extension_environment_beats_runtime_file_and_hub(tmp_path: Path) -> None:
    runtime_file(tmp_path, 42)
    env = {**EXT_ENV, **HUB_ENV, "JPY_PARENT_PID": "42"}
    found = discover_server(environ=env, runtime_dir=tmp_path)
    assert (found.url, found.token) == ("http://127.0.0.1:9001/base/", "ext-token")
    assert found.source == "$JUPYTER_DEEPRESEARCH_URL"


def test_runtime_file_of_the_parent_server_beats_hub(tmp_path: Path) -> None:
    path = runtime_file(tmp_path, 42)
    found = discover_server(environ={**HUB_ENV, "JPY_PARENT_PID": "42"}, runtime_dir=tmp_path)
    assert (found.url, found.token) == ("http://localhost:9002/lab-base/", "rt")
    assert str(path) in found.source


def test_runtime_file_is_found_through_jupyter_runtime_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime_file(tmp_path, 4242, token="from-jupyter-core")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    found = discover_server(environ={"JPY_PARENT_PID": "4242"})
    assert found.token == "from-jupyter-core"


def test_other_servers_runtime_files_are_never_guessed(tmp_path: Path) -> None:
    runtime_file(tmp_path, 7)  # an unrelated server
    with pytest.raises(ServerNotFound) as caught:
        discover_server(environ={"JPY_PARENT_PID": "42"}, runtime_dir=tmp_path)
    assert "jpserver-42.json" in str(caught.value)


def test_unix_socket_runtime_file(tmp_path: Path) -> None:
    runtime_file(tmp_path, 42, url="http+unix://%2Ftmp%2Fj.sock/", sock="/tmp/j.sock")
    found = discover_server(environ={"JPY_PARENT_PID": "42"}, runtime_dir=tmp_path)
    assert found.socket == "/tmp/j.sock"
    assert found.url == "http://localhost/lab-base/"


def test_jupyterhub_service_url_and_token() -> None:
    found = discover_server(environ=HUB_ENV)
    assert (found.url, found.token) == ("http://127.0.0.1:9003/user/ada/", "hub-token")
    assert found.headers == {"Authorization": "token hub-token"}


def test_jupyterhub_url_without_prefix_gets_the_prefix() -> None:
    env = {**HUB_ENV, "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:9003"}
    assert discover_server(environ=env).url == "http://127.0.0.1:9003/user/ada/"


@pytest.mark.parametrize(
    "bind", ["http://:9003/user/ada/", "http://0.0.0.0:9003/user/ada/", "http://0.0.0.0:9003"]
)
def test_jupyterhub_bind_addresses_are_dialled_on_loopback(bind: str) -> None:
    env = {**HUB_ENV, "JUPYTERHUB_SERVICE_URL": bind}
    assert discover_server(environ=env).url == "http://127.0.0.1:9003/user/ada/"


def test_jupyterhub_prefix_alone_means_the_default_local_port() -> None:
    env = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/", "JUPYTERHUB_API_TOKEN": "t"}
    assert discover_server(environ=env).url == "http://127.0.0.1:8888/user/ada/"


def test_jupyterhub_token_reaches_the_server_in_the_header(fake: FakeServer) -> None:
    fake.routes[("GET", "/user/ada/api/deepresearch/health")] = lambda _: Reply(200, {"ok": 1})
    env = {"JUPYTERHUB_SERVICE_URL": fake.url + "user/ada/", "JUPYTERHUB_API_TOKEN": "hub-token"}
    with ResearchClient(environ=env) as client:
        assert client.health() == {"ok": 1}
    assert fake.requests[-1].headers["authorization"] == "token hub-token"


def test_failure_says_what_was_tried_and_how_to_enable_the_extension(tmp_path: Path) -> None:
    with pytest.raises(ServerNotFound) as caught:
        discover_server(environ={}, runtime_dir=tmp_path)
    message = str(caught.value)
    assert "jupyter server extension enable jupyter_deepresearch.extension" in message
    for tried in ("url=", "JUPYTER_DEEPRESEARCH_URL", "JPY_PARENT_PID", "JUPYTERHUB_SERVICE_URL"):
        assert tried in message


def test_a_server_without_the_extension_is_reported_as_such(fake: FakeServer) -> None:
    with ResearchClient(fake.url, "t") as client, pytest.raises(ServerNotFound) as caught:
        client.health()
    assert "does not serve /api/deepresearch/" in str(caught.value)
    assert "jupyter server extension enable" in str(caught.value)


def test_a_server_without_a_token_gets_a_matching_xsrf_pair(fake: FakeServer) -> None:
    fake.routes[("POST", "/api/deepresearch/tasks/" + "a" * 32 + "/pause")] = lambda _: Reply(
        409, {"message": "not running"}
    )
    with ResearchClient(fake.url, "") as client, pytest.raises(Exception, match="not running"):
        client.pause("a" * 32)
    headers = fake.requests[-1].headers
    assert "authorization" not in headers
    assert headers["x-xsrftoken"]
    assert f"_xsrf={headers['x-xsrftoken']}" in headers["cookie"]
