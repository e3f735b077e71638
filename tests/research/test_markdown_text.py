"""Text from sources and questions renders as itself in Markdown, identifiers in code spans."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from jupyter_deepresearch.extension.markdown_text import escape
from jupyter_deepresearch.extension.research import run_research
from jupyter_deepresearch.extension.research.base import NumberedSource
from jupyter_deepresearch.extension.research.citations import sources_section

md = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _shown(markdown: str) -> str:
    """The text a reader sees of one rendered paragraph."""
    rendered = md.render(markdown)
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("What do __enter__ and __exit__ do?", ["__enter__", "__exit__"]),
        ("Pass *args and **kwargs on", ["*args", "**kwargs"]),
        ("Call asyncio.create_task() first", ["asyncio.create_task()"]),
    ],
)
def test_identifiers_become_code_spans(text: str, code: list[str]) -> None:
    rendered = md.render(escape(text))
    assert "<strong>" not in rendered and "<em>" not in rendered
    assert re.findall(r"<code>(.*?)</code>", rendered) == code
    assert _shown(escape(text)) == text


# Single-line text without backticks (backticks delimit code spans, which escape keeps).
_prose = st.text(
    st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"], exclude_characters="`"),
    max_size=60,
)


@given(_prose)
def test_any_text_renders_as_itself(text: str) -> None:
    text = " ".join(text.split())
    assert _shown(escape(text)) == text


@pytest.mark.parametrize("text", ["1. foo", "2) bar", "- foo", "+ foo", "= foo", "---", "# no"])
def test_text_that_would_start_a_block_stays_text(text: str) -> None:
    assert md.render(escape(text)).startswith("<p>")
    assert _shown(escape(text)) == text
    assert _shown("- " + escape(text)) == text, "nor does it nest inside a list item"


def test_existing_code_spans_are_kept() -> None:
    assert escape("See `a_b` and a_b") == "See `a_b` and `a_b`"


def test_sources_link_their_titles() -> None:
    sources = [
        NumberedSource(n=1, id="python:json.loads", title="json.loads", url="python:json.loads"),
        NumberedSource(n=2, id="web:1", title="A [bracketed] title", url="https://example.org/a_b"),
        NumberedSource(n=3, id="file:notes/my notes.md", title="my_notes", url="notes/my notes.md"),
    ]
    section = sources_section(sources)
    rendered = md.render(section)
    assert '<a href="https://example.org/a_b">A [bracketed] title</a>' in rendered
    assert '<a href="notes/my%20notes.md"><code>my_notes</code></a>' in rendered
    assert "1. json.loads — `python:json.loads`" in section, "an id is no address"


@pytest.mark.anyio
async def test_dunder_question_renders_without_bold(make_ctx: Any) -> None:
    ctx = make_ctx("What do __enter__ and __exit__ do?")
    result = await run_research(ctx)
    for markdown in (result.report, "".join(ctx.outputs)):
        rendered = md.render(markdown)
        assert "<strong>enter</strong>" not in rendered
        assert "<strong>exit</strong>" not in rendered
    title = md.render(result.report.splitlines()[0])
    assert title == "<h1>What do <code>__enter__</code> and <code>__exit__</code> do?</h1>\n"
