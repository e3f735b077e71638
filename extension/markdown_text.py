"""Plain text (from sources, questions, search queries) made safe to place in Markdown.

Source sentences mention `__enter__`, `*args` and `a[1]`; written into a report as they are,
Markdown shows "**enter**", drops asterisks and mistakes `[1]` for a citation. `escape` puts
identifiers in code spans and backslash-escapes every other character Markdown gives a meaning,
keeping code spans the text already has (the extractive writer turns Sphinx roles into them).
"""

from __future__ import annotations

import re

# A code span: a run of backticks, anything, the same run (CommonMark's rule, without newlines).
CODE_SPAN_RE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_URL_RE = re.compile(r"\bhttps?://[^\s<>`]+[^\s<>`.,;:!?)\]]")
# Names Markdown would mangle: with underscores (`__enter__`, `create_task`) or stars (`*args`).
_IDENTIFIER_RE = re.compile(
    r"(?<![\w`*\\.])\*{0,2}[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\(\))?(?![\w`])"
)
_SPECIAL_RE = re.compile(r"([\\`*_\[\]<>&#|~!])")


# What would start a list, a rule or a heading underline at the beginning of a line.
_BLOCK_START_RE = re.compile(r"^([-+=]|\d{1,9}(?=[.)]))")


def escape(text: str) -> str:
    """`text` as Markdown inline text that renders as the same characters, wherever it starts."""
    text = text.lstrip()
    out: list[str] = []
    last = 0
    for match in CODE_SPAN_RE.finditer(text):
        out.append(_escape_prose(text[last : match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_escape_prose(text[last:]))
    escaped = "".join(out)
    start = _BLOCK_START_RE.match(escaped)
    if start is None:
        return escaped
    if start.group(1)[0].isdigit():  # `1.` starts a list, `1\.` does not
        return escaped[: start.end()] + "\\" + escaped[start.end() :]
    return "\\" + escaped


def _escape_prose(text: str) -> str:
    out: list[str] = []
    last = 0
    for match in re.finditer(f"{_URL_RE.pattern}|{_IDENTIFIER_RE.pattern}", text):
        token = match.group(0)
        if not token.startswith("http") and "_" not in token and "*" not in token:
            continue
        out.append(_SPECIAL_RE.sub(r"\\\1", text[last : match.start()]))
        out.append(f"<{token}>" if token.startswith("http") else f"`{token}`")
        last = match.end()
    out.append(_SPECIAL_RE.sub(r"\\\1", text[last:]))
    return "".join(out)
