"""Checked citations: does the passage a claim cites say what the claim says?

What a claim is: the text of a paragraph or list item up to and including a group of citation
markers (`... [2]`, `... [1][3].`); text after a paragraph's last group is a claim without
citation when it has at least `MIN_UNCITED_WORDS` words outside code spans. Headings, code
blocks, tables, notes (block quotes that cite nothing) and pointers ("See [2].") are not claims.

How a claim is scored: each of its sentences by the share of its content words (stems, stop
words dropped, our tokenizer) found in the passages retrieved for the sources it cites and their
titles, each word weighted by its rarity across all of the report's sources (a word every source
has proves little); the claim scores as its weakest sentence. It is supported from
`SUPPORT_THRESHOLD` up, and when every number it cites names a source. A claim without citation
counts as unsupported: the writer was asked to cite every claim. No model, no network: the same
report and passages always give the same figures.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token

from ..markdown_text import CODE_SPAN_RE
from ..models import CitationCheck, CitationProblem
from .base import NumberedSource
from .text import content_terms, counted, split_sentences

SUPPORT_THRESHOLD = 0.5
MIN_UNCITED_WORDS = 3

_MARK = r"(?<!\\)\[\d{1,3}(?:\s*,\s*\d{1,3})*\](?!\()"
# One group of markers (`[1]`, `[1, 2]`, `[1][2]`, `[1], [2]`) and the punctuation closing it.
_GROUP_RE = re.compile(rf"{_MARK}(?:[ \t]*,?[ \t]*{_MARK})*[.,;:!?]*")
_MARKERS = {
    "unsupported": " ⚠ *unsupported by the cited passage*",
    "uncited": " ⚠ *no citation*",
    "unknown_source": " ⚠ *cites a number that names no source*",
}

_md = MarkdownIt("commonmark").enable("table")
# Words of a pointer to a source ("See [2].", "For details, see the documentation [1]"), which
# states nothing to check.
_POINTER_TERMS = frozenset(content_terms("see details more further information documentation"))


@dataclass(frozen=True)
class CheckedReport:
    """The report body with its unsupported claims marked, and what the check found."""

    body: str
    claims: list[CitationCheck]
    support: float | None  # share of supported claims; None when there is no claim
    summary: str  # one line of Markdown for the reader


@dataclass(frozen=True)
class _Run:
    line: int  # where the run ends in the body: line index and column after it
    column: int
    text: str  # Markdown of the run without its citation markers
    numbers: list[int]


def check_citations(
    body: str, sources: Sequence[NumberedSource], passages: Mapping[str, Sequence[str]]
) -> CheckedReport:
    """Check every claim of `body` against the `passages` (by source id) of the sources it cites."""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    lines = body.split("\n")
    support_text = {s["n"]: "\n".join([s["title"], *passages.get(s["id"], ())]) for s in sources}
    tokens_by_n = {n: set(content_terms(text)) for n, text in support_text.items()}
    weight = _weights(list(tokens_by_n.values()))
    claims: list[CitationCheck] = []
    inserts: list[tuple[int, int, str]] = []
    for run in _runs(lines):
        check = _check(run, tokens_by_n, weight)
        if check is None:
            continue
        claims.append(check)
        if check.problem is not None:
            inserts.append((run.line, run.column, _MARKERS[check.problem]))
    for line, column, marker in sorted(inserts, reverse=True):
        lines[line] = lines[line][:column] + marker + lines[line][column:]
    support = sum(c.supported for c in claims) / len(claims) if claims else None
    return CheckedReport("\n".join(lines), claims, support, summary(claims))


def cited_numbers(body: str) -> list[int]:
    """Citation numbers anywhere in `body` but code (tables and headings included), in order."""
    seen: dict[int, None] = {}
    for token in _md.parse(body):
        if token.type == "inline":
            masked = CODE_SPAN_RE.sub(lambda m: "`" * len(m.group(0)), token.content)
            for match in _GROUP_RE.finditer(masked):
                seen.update(dict.fromkeys(int(n) for n in re.findall(r"\d+", match.group(0))))
    return list(seen)


def summary(claims: Sequence[CitationCheck]) -> str:
    """`Citation check: 9 of 10 claims are supported by the passages they cite. ...`"""
    if not claims:
        return "**Citation check:** the report makes no claim to check."
    good = sum(c.supported for c in claims)
    verb = "is" if good == 1 else "are"
    text = (
        f"**Citation check:** {good} of {counted(len(claims), 'claim')} {verb} supported by the "
        "passages they cite."
    )
    problems = [
        counted(sum(c.problem == "unsupported" for c in claims), "unsupported claim"),
        counted(
            sum(c.problem == "unknown_source" for c in claims),
            "claim citing a number that names no source",
            "claims citing a number that names no source",
        ),
        counted(sum(c.problem == "uncited" for c in claims), "claim without citation"),
    ]
    flagged = [p for p in problems if not p.startswith("0 ")]
    if flagged:
        text += " Marked ⚠: " + ", ".join(flagged) + "."
    return text


def _weights(docs: list[set[str]]) -> dict[str, float]:
    """BM25's idf of each word over the sources; a word no source has weighs as a rare one."""
    n = len(docs)
    df: dict[str, int] = {}
    for doc in docs:
        for t in doc:
            df[t] = df.get(t, 0) + 1
    return {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}


def _rare_weight(n_docs: int) -> float:
    """The weight of a word only one source has."""
    return math.log(1 + (max(n_docs, 1) - 0.5) / 1.5)


def _check(
    run: _Run, tokens_by_n: Mapping[int, set[str]], weight: Mapping[str, float]
) -> CitationCheck | None:
    claim, in_code = _plain(run.text)
    sentences = [content_terms(s) for s in split_sentences(claim)]
    sentences = [s for s in sentences if not set(s) <= _POINTER_TERMS]
    known = [n for n in run.numbers if n in tokens_by_n]
    unknown = [n for n in run.numbers if n not in tokens_by_n]
    if not run.numbers:
        if len(re.findall(r"[^\W\d_]\w*", in_code)) < MIN_UNCITED_WORDS:
            return None  # a label or a list of names, not a statement
        return CitationCheck(claim=claim, sources=[], supported=False, score=0.0, problem="uncited")
    if not sentences and not unknown:
        return None  # a bare citation or a pointer ("See [2].") states nothing to check
    support: set[str] = set().union(*(tokens_by_n[n] for n in known))
    rare = _rare_weight(len(tokens_by_n))
    scores = []
    for terms in sentences:
        total = sum(weight.get(t, rare) for t in set(terms))
        found = sum(weight.get(t, rare) for t in set(terms) & support)
        scores.append(found / total)
    score = round(min(scores), 4) if scores and known else 0.0
    problem: CitationProblem | None
    if unknown:
        problem = "unknown_source"
    elif score < SUPPORT_THRESHOLD:
        problem = "unsupported"
    else:
        problem = None
    return CitationCheck(
        claim=claim,
        sources=run.numbers,
        supported=problem is None,
        score=score,
        problem=problem,
    )


def _runs(lines: list[str]) -> list[_Run]:
    """The claim candidates of every paragraph, in order, with where each ends in `lines`."""
    out: list[_Run] = []
    quotes = 0
    tokens = _md.parse("\n".join(lines))
    for i, token in enumerate(tokens):
        if token.type == "blockquote_open":
            quotes += 1
        elif token.type == "blockquote_close":
            quotes -= 1
        elif token.type == "inline" and tokens[i - 1].type == "paragraph_open":
            runs = _paragraph_runs(token, tokens[i - 1], lines)
            if quotes and not any(r.numbers for r in runs):
                continue  # a note to the reader, not a statement from the sources
            out.extend(runs)
    return out


def _paragraph_runs(inline: Token, para: Token, lines: list[str]) -> list[_Run]:
    content = inline.content
    first = para.map[0] if para.map else 0
    masked = CODE_SPAN_RE.sub(lambda m: "`" * len(m.group(0)), content)
    runs: list[_Run] = []
    start = 0
    for match in _GROUP_RE.finditer(masked):
        numbers = list(dict.fromkeys(int(n) for n in re.findall(r"\d+", match.group(0))))
        line, column = _locate(content, match.end(), first, lines)
        runs.append(_Run(line, column, content[start : match.start()], numbers))
        start = match.end()
    if content[start:].strip():
        line, column = _locate(content, len(content), first, lines)
        runs.append(_Run(line, column, content[start:], []))
    return runs


def _locate(content: str, offset: int, first: int, lines: list[str]) -> tuple[int, int]:
    """Line and column in the body of `offset` in a paragraph's content (prefixes stripped)."""
    before = content[:offset].split("\n")
    index = first + len(before) - 1
    content_line = content.split("\n")[len(before) - 1]
    body_line = lines[index]
    start = len(body_line.rstrip()) - len(content_line.rstrip())
    if start < 0 or not body_line[start:].startswith(content_line.rstrip()):
        return index, len(body_line.rstrip())  # tabs expanded by the parser: end of the line
    return index, start + len(before[-1])


def _plain(markdown: str) -> tuple[str, str]:
    """The text a reader sees of inline Markdown, and the same without code spans."""
    seen: list[str] = []
    prose: list[str] = []
    for block in _md.parseInline(markdown):
        for child in block.children or []:
            if child.type == "text":
                seen.append(child.content)
                prose.append(child.content)
            elif child.type == "code_inline":
                seen.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                seen.append(" ")
                prose.append(" ")
    return " ".join("".join(seen).split()), " ".join("".join(prose).split())
