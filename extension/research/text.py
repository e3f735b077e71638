"""Text tools: tokenizer (with PyStemmer's Snowball stemmer), sentences, keyphrases. Pure.

Nothing here downloads data or depends on hash ordering, so the same text always gives the same
tokens, sentences and phrases (the extractive writer's reports are byte-identical across runs).
"""

from __future__ import annotations

import keyword
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

import Stemmer

TOKENIZER_VERSION = "1"

_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|\d+")

# A compact English stop list plus words that every documentation sentence carries.
_STOP_TEXT = """
    a about above after again against all am an and any are aren as at be because been before
    being below between both but by can cannot could did do does doing don down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is isn it its itself just let me more most my myself no nor not now of off on once only
    or other ought our ours ourselves out over own same she should so some such than that the
    their theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves also may might must shall us e g ie eg etc via vs one use used using
    get gets way ways work works tell explain please python difference between does
"""
STOPWORDS = frozenset(_STOP_TEXT.split())

# Question words and fillers that say nothing about the topic of a query.
_FILLER_TEXT = """what how why when which who whom whose where does do did is are can could
should would explain describe tell me please way ways difference best example examples"""
QUERY_FILLERS = frozenset(_FILLER_TEXT.split())

_KEYWORD_STOPWORDS = frozenset(w for w in keyword.kwlist if w in STOPWORDS)
_KW_CONTEXT = frozenset(
    {
        "statement",
        "statements",
        "keyword",
        "loop",
        "loops",
        "clause",
        "clauses",
        "block",
        "expression",
        "expressions",
        "operator",
    }
)

_stemmer = Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Snowball English stem of a lower-case word (cached: vocabularies repeat a lot)."""
    return str(_stemmer.stemWord(word))


_CAMEL_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def _camel_parts(word: str) -> list[str]:
    """`CancelledError` → `Cancelled`, `Error`; `HTTPServer` → `HTTP`, `Server`."""
    if word.islower() or word.isupper() or not word.isalnum():
        return [word]
    return _CAMEL_RE.findall(word) or [word]


_CODE_NAME_RE = re.compile(
    r"`([^`\s]{3,40})`|\b([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+(?:\(\))?)|\b([a-z_]\w*\(\))"
    r"|\b([A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+)\b"
)


def code_names(text: str) -> list[str]:
    """Code-like names in prose (`CancelledError`, `Task.cancel()`, `wait_for()`), in order."""
    out: list[str] = []
    for match in _CODE_NAME_RE.finditer(text):
        name = next(g for g in match.groups() if g)
        name = name.rstrip(".,;:")
        if name and name not in out and not name.startswith(("http", "e.g", "i.e")):
            out.append(name)
    return out


def words(text: str) -> list[str]:
    """Word-like pieces of `text`, dotted names (`asyncio.Task.cancel`) kept whole."""
    return _WORD_RE.findall(text)


def tokenize(text: str) -> list[str]:
    """Index tokens: lower-cased stems, stop words dropped; identifiers also split into parts.

    `create_task` gives `create_task`, `creat`, `task`; `asyncio.Task.cancel` gives its dotted
    form plus each part, so both code names and prose words match. A Python keyword that is a
    stop word survives as `kw.with` where it names a statement ("the with statement").
    """
    out: list[str] = []
    raws = _WORD_RE.findall(text)
    for i, raw in enumerate(raws):
        word = raw.lower()
        if word in _KEYWORD_STOPWORDS and i + 1 < len(raws) and raws[i + 1].lower() in _KW_CONTEXT:
            out.append(f"kw.{word}")
            continue
        pieces = [p.lower() for p in re.split(r"[._]", raw) for p in _camel_parts(p) if p]
        if len(pieces) > 1:
            out.append(word)
        for piece in pieces:
            if piece in STOPWORDS or (len(piece) < 2 and not piece.isdigit()):
                continue
            out.append(stem(piece))
    return out


def names_statement(word: str, following: str) -> bool:
    """True for a Python keyword that names a statement here (`with` in "with statement")."""
    return word.lower() in _KEYWORD_STOPWORDS and following.lower() in _KW_CONTEXT


def content_terms(text: str) -> list[str]:
    """Stems of the words that carry meaning in a question (stop words and fillers dropped)."""
    return [
        t
        for t in tokenize(text)
        if t not in QUERY_FILLERS and (t.startswith("kw.") or ("." not in t and "_" not in t))
    ]


_ABBREVIATIONS = (
    "e.g.",
    "i.e.",
    "etc.",
    "vs.",
    "cf.",
    "Mr.",
    "Dr.",
    "No.",
    "approx.",
)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z`\"'(\[*_0-9])")


def split_sentences(text: str) -> list[str]:
    """Sentences of a prose paragraph; abbreviations and dotted names do not end a sentence."""
    text = " ".join(text.split())
    if not text:
        return []
    protected = text
    for i, abbr in enumerate(_ABBREVIATIONS):
        protected = protected.replace(abbr, f"\x00{i}\x00")
    parts = _SENTENCE_END_RE.split(protected)
    sentences = []
    for part in parts:
        for i, abbr in enumerate(_ABBREVIATIONS):
            part = part.replace(f"\x00{i}\x00", abbr)
        part = part.strip()
        if part:
            sentences.append(part)
    return sentences


def keyphrases(text: str, limit: int = 6, exclude: Iterable[str] = ()) -> list[str]:
    """Up to `limit` key words or short phrases of `text`, most salient first, deterministic.

    Candidates are runs of non-stop words (at most three) and code identifiers; a candidate
    scores by the summed frequency of its stems, ties broken by first appearance.
    """
    excluded = {stem(w.lower()) for w in exclude}
    candidates: list[str] = []
    run: list[str] = []

    def close_run() -> None:
        if run:
            for size in (3, 2, 1):
                if len(run) >= size:
                    candidates.append(" ".join(run[-size:]))
            run.clear()

    for token in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*[A-Za-z0-9_]|[A-Za-z]|[^\sA-Za-z]+", text):
        low = token.lower()
        if not re.match(r"[A-Za-z_]", token):
            close_run()
            continue
        if low in STOPWORDS or low in QUERY_FILLERS or len(low) < 3:
            close_run()
            continue
        if "." in token or "_" in token or (token[1:] != token[1:].lower()):
            close_run()
            candidates.append(token)
            continue
        run.append(low)
        if len(run) > 3:
            run.pop(0)
    close_run()
    freq = Counter(stem(w.lower()) for c in candidates for w in c.split() if " " not in c)
    scored: dict[str, tuple[float, int]] = {}
    for order, cand in enumerate(candidates):
        stems = [stem(w.lower()) for w in cand.split()]
        if any(s in excluded for s in stems):
            continue
        score = sum(freq[s] for s in stems) / (1 + 0.5 * (len(stems) - 1))
        if cand not in scored:
            scored[cand] = (score, order)
    ranked = sorted(scored, key=lambda c: (-scored[c][0], scored[c][1]))
    chosen: list[str] = []
    seen: set[str] = set()
    for cand in ranked:
        cand_stems = {stem(w.lower()) for w in cand.split()}
        if cand_stems <= seen:
            continue
        chosen.append(cand)
        seen |= cand_stems
        if len(chosen) >= limit:
            break
    return chosen


def jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    """Overlap of two token lists as sets, 0..1."""
    sa, sb = set(a), set(b)
    if not sa or not sb:
        return 0.0
    return len(sa & sb) / len(sa | sb)


def normalise_space(text: str) -> str:
    """Collapse runs of white space into one space and strip."""
    return " ".join(text.split())


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """`1 learning`, `2 learnings`; `plural` for nouns that do not just take an s (`queries`)."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"
