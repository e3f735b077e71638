"""`%research` / `%%research`, and that the kernel side stays light to import."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from kernel_fakes import END, FakeServer, sse, task_info, task_routes

import jupyter_deepresearch.kernel_helpers as kh
from jupyter_deepresearch.kernel_helpers import ResearchClient, ResearchTask


@pytest.fixture
def shell(client: ResearchClient, monkeypatch: pytest.MonkeyPatch, text_mode: None) -> Iterator:
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setattr(kh, "_default", client)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_deepresearch.kernel_helpers")
    yield ip
    InteractiveShell.clear_instance()


def submitted(fake: FakeServer) -> list[object]:
    return [r.body for r in fake.requests if r.path == "/api/deepresearch/tasks"]


def test_line_magic_with_options_and_an_apostrophe(fake: FakeServer, shell: object) -> None:
    task_routes(fake, task_info())
    fake.sse_scripts = [[sse(1, "status", {"status": "completed"}), END]]
    shell.run_line_magic(  # type: ignore[attr-defined]
        "research", "-o t --breadth 2 --ai extractive --wait What's new in asyncio?"
    )
    assert submitted(fake) == [
        {
            "query": "What's new in asyncio?",
            "ai": {"provider": "extractive"},
            "report": {"breadth": 2},
        }
    ]
    task = shell.user_ns["t"]  # type: ignore[attr-defined]
    assert isinstance(task, ResearchTask) and task.status == "completed"


def test_cell_magic_takes_the_cell_as_the_query(fake: FakeServer, shell: object) -> None:
    task_routes(fake, task_info())
    shell.run_cell_magic("research", "--depth 2 --restart", "Compare asyncio\nand trio.\n")  # type: ignore[attr-defined]
    assert submitted(fake) == [
        {"query": "Compare asyncio\nand trio.\n", "report": {"depth": 2}, "restart": True}
    ]


def test_importing_the_kernel_side_loads_no_server_or_widget_code() -> None:
    code = (
        "import sys, jupyter_deepresearch.kernel_helpers as k; "
        "bad = [m for m in ('tornado', 'jupyter_server', 'ipywidgets', 'IPython') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_question_mark_at_the_end_is_part_of_the_question(
    fake: FakeServer, shell: object
) -> None:
    # IPython read the trailing `?` as help for `work`: "Object `work` not found."
    task_routes(fake, task_info())
    fake.sse_scripts = [[sse(1, "status", {"status": "completed"}), END]]
    result = shell.run_cell("%research --wait How do generators work?")  # type: ignore[attr-defined]
    assert result.success
    assert submitted(fake) == [{"query": "How do generators work?"}]


def test_a_help_request_for_the_magic_itself_still_shows_help(shell: object) -> None:
    transformed = shell.transform_cell("%research?")  # type: ignore[attr-defined]
    assert "pinfo" in transformed


def test_no_question_prints_a_usage_line_not_a_traceback(
    fake: FakeServer, shell: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.core.error import UsageError

    result = shell.run_cell("%research --wait")  # type: ignore[attr-defined]
    assert isinstance(result.error_in_exec, UsageError)
    err = capsys.readouterr().err
    assert "UsageError: %research needs a question" in err
    assert "Traceback" not in err
    assert submitted(fake) == []


def test_a_question_in_the_cell_that_loads_the_magic_is_asked(
    fake: FakeServer, client: ResearchClient, monkeypatch: pytest.MonkeyPatch, text_mode: None
) -> None:
    # IPython transformed the whole cell before `%load_ext` ran: the question had become help
    # for `work` ("Object `work` not found.").
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setattr(kh, "_default", client)
    task_routes(fake, task_info())
    fake.sse_scripts = [[sse(1, "status", {"status": "completed"}), END]]
    ip = InteractiveShell.instance()
    try:
        pinfo = ip.magics_manager.magics["line"]["pinfo"]
        cell = "%load_ext jupyter_deepresearch.kernel_helpers\n"
        cell += "%research --wait How do generators work?"
        result = ip.run_cell(cell, store_history=True)
        assert result.success
        assert submitted(fake) == [{"query": "How do generators work?"}]
        assert ip.magics_manager.magics["line"]["pinfo"] is pinfo  # help is help again
    finally:
        InteractiveShell.clear_instance()
