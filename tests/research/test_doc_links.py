"""Links of offline sources: Python documentation pages and anchors, files under the root."""

from __future__ import annotations

import sys

import pytest

from jupyter_deepresearch.extension.research.doc_links import (
    docs_base,
    file_link,
    link_from,
    source_link,
)

DOCS = docs_base()


def test_docs_base_is_the_running_python_version() -> None:
    major, minor = sys.version_info[:2]
    assert docs_base() == f"https://docs.python.org/{major}.{minor}/"
    assert docs_base((3, 10)) == "https://docs.python.org/3.10/"


@pytest.mark.parametrize(
    ("source_id", "link"),
    [
        # Implementation modules are dropped; asyncio's names live on several pages.
        ("python:asyncio.tasks.Task.cancel", "library/asyncio-task.html#asyncio.Task.cancel"),
        ("python:asyncio.locks.Lock.acquire", "library/asyncio-sync.html#asyncio.Lock.acquire"),
        (
            "python:asyncio.streams.open_connection",
            "library/asyncio-stream.html#asyncio.open_connection",
        ),
        ("python:asyncio.runners.run", "library/asyncio-runner.html#asyncio.run"),
        (
            "python:asyncio.base_events.BaseEventLoop.call_later",
            "library/asyncio-eventloop.html#asyncio.loop.call_later",
        ),
        (
            "python:asyncio.subprocess.Process",
            "library/asyncio-subprocess.html#asyncio.subprocess.Process",
        ),
        ("python:asyncio.coroutines.iscoroutinefunction", "library/asyncio.html#module-asyncio"),
        ("python:json.decoder.JSONDecoder", "library/json.html#json.JSONDecoder"),
        (
            "python:unittest.case.TestCase.assertEqual",
            "library/unittest.html#unittest.TestCase.assertEqual",
        ),
        # Documented submodules keep their names, on their own or their parent's page.
        (
            "python:logging.handlers.RotatingFileHandler",
            "library/logging.handlers.html#logging.handlers.RotatingFileHandler",
        ),
        (
            "python:xml.etree.ElementTree.parse",
            "library/xml.etree.elementtree.html#xml.etree.ElementTree.parse",
        ),
        ("python:email.mime.text.MIMEText", "library/email.mime.html#email.mime.text.MIMEText"),
        ("python:importlib.util.find_spec", "library/importlib.html#importlib.util.find_spec"),
        (
            "python:multiprocessing.pool.Pool",
            "library/multiprocessing.html#multiprocessing.pool.Pool",
        ),
        ("python:collections.abc.Mapping", "library/collections.abc.html#collections.abc.Mapping"),
        ("python:posixpath.join", "library/os.path.html#os.path.join"),
        # Names documented under another name; constructors under their class.
        ("python:random.Random.choice", "library/random.html#random.choice"),
        (
            "python:concurrent.futures.thread.ThreadPoolExecutor.__init__",
            "library/concurrent.futures.html#concurrent.futures.ThreadPoolExecutor",
        ),
        # Built-ins: functions, types and their methods, exceptions.
        ("python:builtins.sorted", "library/functions.html#sorted"),
        ("python:builtins.int", "library/functions.html#int"),
        ("python:builtins.str.join", "library/stdtypes.html#str.join"),
        ("python:builtins.set.add", "library/stdtypes.html#frozenset.add"),
        ("python:builtins.list.append", "library/stdtypes.html#list"),  # no entry of its own
        ("python:builtins.ValueError", "library/exceptions.html#ValueError"),
        (
            "python:builtins.BaseException.add_note",
            "library/exceptions.html#BaseException.add_note",
        ),
        ("python:builtins", "library/builtins.html#module-builtins"),
        # Modules, and what has no page.
        ("python:csv", "library/csv.html#module-csv"),
        ("python:sre_parse.parse", "py-modindex.html"),
        # pydoc topics: the section's Sphinx label.
        ("pydoc:topic:with", "reference/compound_stmts.html#with"),
        ("pydoc:topic:typesmapping", "library/stdtypes.html#typesmapping"),
        ("pydoc:topic:debugger", "library/pdb.html#debugger"),
        ("pydoc:topic:no-such-topic", "search.html?q=no-such-topic"),
    ],
)
def test_python_sources_link_to_their_documentation(source_id: str, link: str) -> None:
    assert source_link(source_id) == DOCS + link


def test_asyncio_run_was_on_the_task_page_in_3_10() -> None:
    assert source_link("python:asyncio.runners.run", (3, 10)) == (
        "https://docs.python.org/3.10/library/asyncio-task.html#asyncio.run"
    )


@pytest.mark.parametrize(
    ("locator", "link"),
    [
        ("papers/x.pdf#page=3", "papers/x.pdf#page=3"),
        ("notes/x.md#L10", "notes/x.md"),
        ("nb.ipynb#cell=3&L1", "nb.ipynb"),
        ("my notes/a b#1.md#L4", "my%20notes/a%20b%231.md"),
    ],
)
def test_file_sources_link_to_the_file_under_the_root(locator: str, link: str) -> None:
    assert file_link(locator) == link
    assert source_link(f"file:{locator}") == link


def test_web_sources_keep_their_url() -> None:
    assert source_link("https://example.org/a?b=1#c") == "https://example.org/a?b=1#c"


@pytest.mark.parametrize(
    ("document", "link", "seen"),
    [
        ("report.md", "papers/x.pdf#page=3", "papers/x.pdf#page=3"),
        ("work/nb.ipynb", "papers/x.pdf#page=3", "../papers/x.pdf#page=3"),
        ("work/deep/nb.ipynb", "work/notes/a%20b.md", "../notes/a%20b.md"),
        ("work/nb.ipynb", DOCS + "library/csv.html", DOCS + "library/csv.html"),
    ],
)
def test_links_as_seen_from_a_document_in_a_folder(document: str, link: str, seen: str) -> None:
    assert link_from(document, link) == seen
