"""The kernel side's Markdown of a task: plain text from the question and messages stays text."""

from __future__ import annotations

from markdown_it import MarkdownIt

from jupyter_deepresearch.kernel_helpers._render import markdown
from jupyter_deepresearch.kernel_helpers._state import TaskSnapshot


def test_the_question_and_messages_render_as_written() -> None:
    snapshot = TaskSnapshot(
        task_id="a" * 32,
        query="What do __enter__ and __exit__ do with *args?",
        status="running",
        messages=["Searching: __enter__ and __exit__", "1 result for *args"],
    )
    html = MarkdownIt().render(markdown(snapshot))
    assert "<strong>enter</strong>" not in html and "<em>" not in html
    assert "<code>__enter__</code>" in html and "<code>__exit__</code>" in html
    assert "*args" in html
