"""Citation markers `[n]`: finding them, renumbering them, and the numbered Sources list."""

from __future__ import annotations

import re

from ..markdown_text import escape
from .base import NumberedSource

# `[3]`, `[1, 2]`, `[1][2]`; not Markdown links (`[text](url)`) nor `[^1]` footnotes.
CITATION_RE = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\](?!\()")


def cited_numbers(text: str) -> list[int]:
    """Citation numbers in order of first appearance."""
    seen: list[int] = []
    for match in CITATION_RE.finditer(text):
        for part in match.group(1).split(","):
            n = int(part)
            if n not in seen:
                seen.append(n)
    return seen


def strip_citations(text: str) -> tuple[str, list[int]]:
    """The text without its markers, and the numbers they held (first appearance order)."""
    numbers = cited_numbers(text)
    stripped = CITATION_RE.sub("", text)
    stripped = re.sub(r"\s+([.,;:!?])", r"\1", stripped)
    return " ".join(stripped.split()), numbers


def renumber(
    parts: list[str], sources: list[NumberedSource]
) -> tuple[list[str], list[NumberedSource]]:
    """Renumber citations 1..k by first appearance across `parts`; keep cited, known sources."""
    by_n = {s["n"]: s for s in sources}
    mapping: dict[int, int] = {}
    for n in cited_numbers("".join(parts)):
        if n in by_n and n not in mapping:
            mapping[n] = len(mapping) + 1

    def sub(match: re.Match[str]) -> str:
        new = sorted({mapping[int(p)] for p in match.group(1).split(",") if int(p) in mapping})
        return "".join(f"[{n}]" for n in new)

    renumbered = [CITATION_RE.sub(sub, part) for part in parts]
    kept = [
        NumberedSource(n=new, id=by_n[old]["id"], title=by_n[old]["title"], url=by_n[old]["url"])
        for old, new in mapping.items()
    ]
    return renumbered, kept


def sources_section(sources: list[NumberedSource], heading: str = "Sources") -> str:
    """The numbered Sources list in Markdown: each title links to its page where it has one."""
    lines = [f"## {heading}", ""]
    for s in sorted(sources, key=lambda s: s["n"]):
        title, url = escape(s["title"]), s["url"]
        if _linkable(url):
            # The <...> form takes spaces and parentheses (file names) as they are.
            target = f"<{url}>" if any(c in url for c in " ()") else url
            lines.append(f"{s['n']}. [{title}]({target})")
        else:  # an id (`python:json.loads`) names the source but is no address
            lines.append(f"{s['n']}. {title} — `{url or s['id']}`")
    return "\n".join(lines) + "\n"


def _linkable(url: str) -> bool:
    """A web address, or a path relative to the server root (a `file:` source's page)."""
    if not url or any(c in url for c in "<>\n`"):
        return False
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", url)
    return scheme is None or scheme.group(1).lower() in ("http", "https")
