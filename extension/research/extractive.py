"""`extractive` writer: an offline, deterministic author that quotes its sources.

No model and no data files: plan and queries come from the question's keyphrases, learnings
are sentences chosen from the search results by relevance with maximal marginal relevance
(MMR) against redundancy, and the report arranges those sentences into an answer and details,
every sentence carrying its [n] citation. Same input, byte-identical output.

Choosing sources: the top search hit and every object the question names (`dataclass` in
"create a dataclass", `joinpath` in "join path components") always get a sentence, and the named
object leads the answer; a sentence with the question's words side by side ("environment
variable") scores higher; a sentence two sources say word for word cites both.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise

from ..markdown_text import escape
from .base import AIProvider, Emit, Hit, Learning, Learnings, NumberedSource, QuerySpec, ReportJob
from .citations import renumber
from .text import (
    code_names,
    content_terms,
    jaccard,
    keyphrases,
    names_statement,
    normalise_space,
    split_sentences,
    stem,
    tokenize,
)
from .threads import run_in_daemon_thread

MAX_LEARNING_SENTENCES = 7  # per query
ANSWER_POINTS = 4
DETAIL_SOURCES = 6
MMR_LAMBDA = 0.7
RELEVANCE_FLOOR = 0.35  # of the best source's score, to appear in the report

_FACETS = (
    ("", "Find the documentation that answers the question directly"),
    ("exception error raised", "Find the errors and exceptions involved"),
    ("example usage return value", "Find how it is used and what it returns"),
    ("note changed version deprecated", "Find caveats and changes between versions"),
    ("function class method", "Find the functions and classes that implement it"),
    ("parameters arguments default", "Find its parameters and their defaults"),
    ("attribute module constant", "Find the attributes and modules involved"),
    ("tutorial introduction", "Find a tutorial or an introduction"),
    ("thread safety performance", "Find notes on threads and performance"),
    ("alternative related comparison", "Find related tools and alternatives"),
)
# One facet per query of a round: `report.breadth` (at most 10) can always be honoured.


class ExtractiveWriter(AIProvider):
    """Writes plan, queries, learnings and report by selecting sentences; no model."""

    name = "extractive"
    writes_markdown = False

    @property
    def model_name(self) -> str:
        return "extractive"

    async def plan(self, question: str, language: str, emit: Emit) -> str:
        return make_plan(question)

    async def queries(
        self, question: str, plan: str, previous: list[Learnings], count: int, language: str
    ) -> list[QuerySpec]:
        return make_queries(question, previous, count)

    async def learnings(
        self, question: str, spec: QuerySpec, hits: list[Hit], language: str
    ) -> Learnings:
        return await run_in_daemon_thread(extract_learnings, question, spec, hits)

    async def report(self, job: ReportJob, emit: Emit) -> tuple[str, list[NumberedSource]]:
        sections, sources = await run_in_daemon_thread(compose_report, job)
        for section in sections:
            await emit(section)
        return "".join(sections), sources


# ---------------------------------------------------------------- plan and queries


def _core_terms(question: str) -> list[str]:
    return keyphrases(question, limit=6)


def _core_query(question: str) -> str:
    """The question's content words in their own order, each once: `asyncio cancel task`."""
    words: list[str] = []
    seen: set[str] = set()
    found = re.findall(r"[A-Za-z_][\w.]*\w|\w+", question)
    for i, word in enumerate(found):
        following = found[i + 1] if i + 1 < len(found) else ""
        if names_statement(word, following):
            words.append(word.lower())
            continue
        terms = content_terms(word)
        if not terms or terms[-1] in seen:
            continue
        seen.update(terms)
        words.append(word if not word.islower() else word.lower())
    return " ".join(words)


def make_plan(question: str) -> str:
    """A short Markdown plan derived from the question's key concepts."""
    terms = _core_terms(question)
    concepts = ", ".join(f"`{t}`" for t in terms) if terms else "the question's wording"
    return (
        "## Research plan\n\n"
        f"**Question:** {escape(normalise_space(question))}\n\n"
        f"**Key concepts:** {concepts}\n\n"
        "1. Search the sources for passages about these concepts, from several angles "
        "(direct answer, errors and exceptions, usage, caveats).\n"
        "2. From each query's results, keep the sentences most relevant to the question, "
        "without repeating what another sentence already says.\n"
        "3. Write a cited report: the answer first, then the details by source.\n"
    )


def make_queries(question: str, previous: list[Learnings], count: int) -> list[QuerySpec]:
    """`count` distinct queries: facets of the question, then follow-ups of earlier rounds."""
    core = _core_query(question) or normalise_space(question)
    candidates: list[QuerySpec] = []
    if not previous:
        candidates.append(QuerySpec(query=normalise_space(question), goal=_FACETS[0][1]))
    else:
        for followup in _followups(previous):
            candidates.append(
                QuerySpec(query=f"{core} {followup}", goal=f"Follow up on {followup}")
            )
    for extra, goal in _FACETS[1:]:
        candidates.append(QuerySpec(query=f"{core} {extra}", goal=goal))
    out: list[QuerySpec] = []
    seen: list[set[str]] = [set(tokenize(q["query"])) for q in _asked(previous)]
    for cand in candidates:
        tokens = set(tokenize(cand["query"]))
        if any(tokens == s for s in seen):
            continue
        seen.append(tokens)
        out.append(cand)
        if len(out) >= count:
            break
    return out


def _asked(previous: list[Learnings]) -> list[QuerySpec]:
    return [QuerySpec(query=item["query"], goal="") for item in previous]


def _followups(previous: list[Learnings]) -> list[str]:
    seen: list[str] = []
    for item in previous:
        for f in item["followups"]:
            if f not in seen:
                seen.append(f)
    return seen


# ---------------------------------------------------------------- learnings

_ROLE_RE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`")
_LIST_MARK_RE = re.compile(r"^(?:\d{1,2}[.)]|[*\-•+])\s+")


_CODE_LINE_RE = re.compile(
    r"^(>>>|\.\.\.|\$ |[\w.\[\]]+\s*[-+*/]?=[^=]|[\w.]+\(.*\)$|\[.*\]\)?$|[{}\[\]()]+$"
    r"|(for|while|if|elif|else|try|except|finally|with|def|class|async def)\b.*:$"
    r"|import [\w.]+$|from [\w.]+ import \w)"
)
_CODEY_RE = re.compile(r"\w\s*=\s*[\w\[(\"']|\[,|\bfor \w+ in \w+:|;\s*$|\w\(\S*\)\s*\w+\(")


def passage_sentences(text: str) -> list[str]:
    """Readable prose sentences of a passage: code, grammar and doctest blocks dropped."""
    out: list[str] = []
    for p, para in enumerate(re.split(r"\n\s*\n", text)):
        lines = [ln for ln in para.splitlines() if ln.strip()]
        if not lines or "::=" in para or any(ln.lstrip().startswith(">>>") for ln in lines):
            continue
        prose = [ln.strip() for ln in lines if not _CODE_LINE_RE.match(ln.strip())]
        if not prose:
            continue
        joined = normalise_space(" ".join(prose))
        if lines[0][:1].isspace() and (not joined.endswith((".", "?")) or joined.endswith("...")):
            continue  # an indented block that is not prose: code, grammar, a table
        joined = _LIST_MARK_RE.sub("", joined)
        joined = _ROLE_RE.sub(r"`\1`", joined).replace("``", "`")
        for i, sentence in enumerate(split_sentences(joined)):
            summary = p == 0 and i == 0 and sentence.endswith(".")
            if _readable(sentence, summary) and not _CODEY_RE.search(sentence):
                out.append(sentence)
    return out


def _readable(sentence: str, summary: bool = False) -> bool:
    """Prose, not code; a passage's summary line (`@contextmanager decorator.`) may be short."""
    n_words = len(sentence.split())
    if n_words < (2 if summary else 4) or n_words > 80 or sentence.endswith(":"):
        return False
    if not sentence[0].isalpha() and sentence[0] not in "`\"'(" + ("@" if summary else ""):
        return False
    letters = sum(c.isalpha() or c.isspace() for c in sentence)
    return letters / len(sentence) >= 0.75


@dataclass
class _Candidate:
    hit: int
    position: int
    text: str
    tokens: list[str]
    score: float = 0.0
    also: list[str] = field(default_factory=list)  # other sources saying the same, by id


def _idf(docs: list[list[str]]) -> dict[str, float]:
    df: Counter[str] = Counter()
    for doc in docs:
        df.update(set(doc))
    n = len(docs)
    return {t: math.log(1.0 + n / c) for t, c in df.items()}


def _query_weights(question: str, query: str) -> dict[str, float]:
    weights = {t: 1.0 for t in content_terms(question)}
    for t in content_terms(query):
        weights.setdefault(t, 0.4)
    return weights


def extract_learnings(question: str, spec: QuerySpec, hits: list[Hit]) -> Learnings:
    """Pick the most relevant, least redundant sentences of `hits`: a learning per source, one of
    its own for a sentence that several sources say word for word (citing them all)."""
    cands: list[_Candidate] = []
    said: dict[str, _Candidate] = {}
    for h, hit in enumerate(hits):
        for p, sentence in enumerate(passage_sentences(hit["text"])):
            first = said.get(sentence)
            if first is not None:  # `bisect_left` and `bisect_right` open alike
                if first.hit != h and hit["id"] not in first.also:
                    first.also.append(hit["id"])
                continue
            said[sentence] = _Candidate(h, p, sentence, tokenize(sentence))
            cands.append(said[sentence])
    weights = _query_weights(question, spec["query"])
    idf = _idf([c.tokens for c in cands]) if cands else {}
    titles = [set(tokenize(hit["title"])) for hit in hits]
    phrases = _phrases(question)
    for c in cands:
        matched = set(c.tokens) & set(weights)
        rel = sum(weights[t] * idf.get(t, 1.0) for t in matched)
        rel += _phrase_bonus(c.tokens, phrases, idf)
        # A passage is about its title: every sentence shares the title's relevance, the first
        # sentence (a docstring's summary line) most.
        title_rel = sum(weights.get(t, 0.0) * idf.get(t, 1.0) for t in titles[c.hit])
        rel += title_rel * _lead(c.position)
        length = max(len(set(c.tokens)), 1)
        c.score = rel / length**0.3 / (1.0 + 0.15 * c.hit) * _kind_weight(c.text)
    chosen = _mmr(
        [c for c in cands if c.score > 0],
        MAX_LEARNING_SENTENCES,
        _leads(question, hits, cands),
    )
    learnings: list[Learning] = []
    by_hit: dict[int, list[_Candidate]] = {}
    for c in chosen:
        by_hit.setdefault(c.hit, []).append(c)
    for h in sorted(by_hit):
        run: list[str] = []
        for c in sorted(by_hit[h], key=lambda c: c.position):
            # A sentence that others say too, or that ends without a full stop (a heading, a
            # summary line) and would run into the next, is a learning of its own.
            if not c.also and c.text.endswith((".", "!", "?")):
                run.append(c.text)
                continue
            if run:
                learnings.append(Learning(text=" ".join(run), sources=[hits[h]["id"]]))
                run = []
            learnings.append(Learning(text=c.text, sources=[hits[h]["id"], *c.also]))
        if run:
            learnings.append(Learning(text=" ".join(run), sources=[hits[h]["id"]]))
    followups = _followup_names(question, spec, [c.text for c in chosen])
    return Learnings(query=spec["query"], learnings=learnings, followups=followups)


PHRASE_BONUS = 0.5  # share of a phrase's words' weight added when a sentence has the phrase


def _phrases(question: str) -> set[tuple[str, str]]:
    """Adjacent pairs of the question's content terms: ("environ", "variabl")."""
    return set(pairwise(content_terms(question)))


def _phrase_bonus(tokens: list[str], phrases: set[tuple[str, str]], idf: dict[str, float]) -> float:
    """A sentence that has two of the question's words side by side, as the question has them
    ("environment variable"), speaks of the question's concept, not only of its words."""
    found = phrases & set(pairwise(tokens))
    return PHRASE_BONUS * sum(idf.get(a, 1.0) + idf.get(b, 1.0) for a, b in found)


_VERSION_NOTE_RE = re.compile(r"^(Changed in version|New in version|Deprecated since|Added in)")


def _kind_weight(sentence: str) -> float:
    """Version notes and cross-references say little about how something works."""
    if _VERSION_NOTE_RE.match(sentence):
        return 0.3
    if re.match(r"^(See|For more|Additional information)\b", sentence):
        return 0.5
    return 1.0


def _lead(position: int) -> float:
    """Share of a passage's title relevance a sentence gets: docs explain their subject first."""
    return max(0.6 - 0.1 * position, 0.15)


def _followup_names(question: str, spec: QuerySpec, sentences: list[str]) -> list[str]:
    """Code names the chosen sentences mention that the question does not: the next leads."""
    asked = set(tokenize(question)) | set(tokenize(spec["query"]))
    out: list[str] = []
    for name in code_names(" ".join(sentences)):
        terms = set(tokenize(name))
        if terms and not terms <= asked and name not in out:
            out.append(name)
    return out[:4]


def _leads(question: str, hits: list[Hit], cands: list[_Candidate]) -> list[_Candidate]:
    """The best sentence of the top hit and of every hit the question names: the search ranked
    the first best, and a source named by the question is what it asks about."""
    wanted = [0] + [h for h, hit in enumerate(hits) if h and name_coverage(hit["id"], question)[0]]
    out: list[_Candidate] = []
    for h in wanted:
        own = [c for c in cands if c.hit == h]
        if own:
            out.append(max(own, key=lambda c: (c.score, -c.position)))
    return out


def _mmr(cands: list[_Candidate], limit: int, leads: list[_Candidate]) -> list[_Candidate]:
    """Maximal marginal relevance: relevant sentences that do not repeat each other, `leads`
    chosen first whatever their score."""
    if not cands:
        return []
    top = max(c.score for c in cands)
    chosen: list[_Candidate] = leads[:limit]
    pool = sorted(
        (c for c in cands if c not in chosen), key=lambda c: (-c.score, c.hit, c.position)
    )
    while pool and len(chosen) < limit:
        best_i, best_value = 0, -math.inf
        for i, c in enumerate(pool):
            redundancy = max((jaccard(c.tokens, s.tokens) for s in chosen), default=0.0)
            value = MMR_LAMBDA * c.score / top - (1 - MMR_LAMBDA) * redundancy
            if value > best_value + 1e-12:
                best_i, best_value = i, value
        picked = pool.pop(best_i)
        if chosen and max(jaccard(picked.tokens, s.tokens) for s in chosen) > 0.8:
            continue  # a near-duplicate, as from two passages of one document
        chosen.append(picked)
    return chosen


# ---------------------------------------------------------------- names


def name_coverage(source_id: str, question: str) -> tuple[int, int]:
    """How many of the question's terms the source's own name and its qualified name hold;
    (0, 0) unless the question names the object itself.

    The question names `dataclasses.dataclass` when its own name is a word of the question
    ("create a dataclass"), `pathlib.PurePath.joinpath` when it is two adjacent words run
    together ("join path"), `bisect.bisect_left` when its parts are all words of the question.
    Only the built-in corpus has qualified names (`python:...` ids).
    """
    if not source_id.startswith("python:"):
        return (0, 0)
    parts = source_id[7:].split(".")
    own = parts[-2] if parts[-1] == "__init__" and len(parts) > 1 else parts[-1]
    asked = set(content_terms(question))
    own_terms = set(content_terms(own))
    if not own_terms:  # a stop word ("get", "all") names nothing
        return (0, 0)
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", question)]
    pairs = {stem(a + b): {stem(a), stem(b)} for a, b in pairwise(words)}
    name_terms = set(content_terms(".".join(parts).replace(".", " ")))
    # Every part of a compound name, stop words too: "path" does not name `get_path`.
    pieces = {stem(w.lower()) for w in re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", own) if w}
    if len(pieces) > 1 and not pieces <= {stem(w) for w in words}:
        return (0, 0)
    if not own_terms <= asked:
        run_together = pairs.get(next(iter(own_terms)), set()) if len(own_terms) == 1 else set()
        if not run_together:
            return (0, 0)
        own_terms = run_together
        name_terms |= run_together
    return (len(own_terms), len(name_terms & asked))


# ---------------------------------------------------------------- report


@dataclass
class _Finding:
    n: int  # citation number of its source
    sentences: list[str]
    scores: list[float]
    also: dict[str, list[int]]  # sentence -> other sources that say it word for word

    def cite(self, sentences: list[str]) -> str:
        """`sentences` as Markdown, each run closed by its citation: [n], or [n][m] after a
        sentence another source says too; a sentence without a full stop closes its run."""
        parts: list[str] = []
        run: list[str] = []
        for sentence in sentences:
            run.append(escape(sentence))
            others = self.also.get(sentence, [])
            if others or not sentence.endswith((".", "!", "?")):  # no run-on into the next
                marks = "".join(f"[{m}]" for m in [self.n, *others])
                parts.append(f"{' '.join(run)} {marks}")
                run = []
        if run:
            parts.append(f"{' '.join(run)} [{self.n}]")
        return " ".join(parts)

    @property
    def score(self) -> float:
        # Two good sentences beat one: a source that explains the subject, not one that names it.
        return sum(sorted(self.scores, reverse=True)[:2])


def compose_report(job: ReportJob) -> tuple[list[str], list[NumberedSource]]:
    """The report body as a list of Markdown sections, citations renumbered 1..k."""
    findings = _findings(job)
    by_n = {s["n"]: s for s in job.sources}
    sections = [f"# {escape(normalise_space(job.question))}\n\n"]
    sections.append(
        "> Offline answer by the extractive writer: every sentence below is quoted from the "
        "numbered sources, chosen for its relevance to the question.\n\n"
    )
    if not job.language.lower().startswith("en"):
        sections.append(
            f"> The extractive writer cannot translate; the report is in the sources' language, "
            f"not `{job.language}`.\n\n"
        )
    if not findings:
        # A note to the reader (a block quote), not a claim for the citation check.
        sections.append(
            "## Answer\n\n> The sources searched hold nothing relevant to this question. "
            "Try other wording, add a folder of your own notes to `search.sources`, or use an "
            "LLM and a web search provider.\n\n"
        )
        return sections, []
    ids = {s["n"]: s["id"] for s in job.sources}
    named = {f.n: name_coverage(ids[f.n], job.question) for f in findings}
    # The object the question names answers it best (the one that names most of the question
    # first); then by relevance. Sources far less relevant than the best one would only dilute
    # the answer.
    ranked = sorted(findings, key=lambda f: (-named[f.n][0], -named[f.n][1], -f.score, f.n))
    floor = RELEVANCE_FLOOR * max(f.score for f in findings)
    kept = [f for f in ranked if named[f.n][0] or (f.score >= floor and f.score > 0)]
    ranked = kept or ranked[:1]
    used: set[tuple[int, str]] = set()
    lines = ["## Answer", ""]
    for rank, finding in enumerate(ranked[:ANSWER_POINTS]):
        size = 3 if rank == 0 else 2
        best = sorted(range(len(finding.sentences)), key=lambda i: (-finding.scores[i], i))[:size]
        picked = [finding.sentences[i] for i in sorted(best)]
        used.update((finding.n, s) for s in picked)
        label = _label(by_n[finding.n])
        lines.append(f"- **{label}**: {finding.cite(picked)}")
    sections.append("\n".join(lines) + "\n\n")

    details: list[str] = []
    for finding in ranked[:DETAIL_SOURCES]:
        rest = [s for s in finding.sentences if (finding.n, s) not in used]
        if not rest:
            continue
        body = "\n".join(f"- {finding.cite([s])}" for s in rest)
        details.append(f"### {_label(by_n[finding.n])}\n\n{body}\n\n")
    if details:
        sections.append("## Details\n\n")
        sections.extend(details)
    # Names the report's sentences mention, worth looking up next.
    written = "".join(sections)
    names = [f.strip("`") for f in job.followups if f.strip("`") in written]
    related = [f"`{name}`" for name in names[:8]]
    if related:
        sections.append("## Related topics\n\n" + ", ".join(related) + "\n\n")
    return renumber(sections, job.sources)


def _label(source: NumberedSource) -> str:
    """The source's title as Markdown, a code name in a code span."""
    title = source["title"]
    if not source["id"].startswith("python:"):
        return escape(re.sub(r" \(Python language reference\)$", "", title))
    title = re.sub(r"^(class|module) ", "", title)
    title = re.sub(r" \(Python language reference\)$", "", title)
    if re.fullmatch(r"[\w.]+(\(\))?( \(built-in\))?( constructor)?", title):
        name, _, suffix = title.partition(" ")
        return f"`{name}`" + (f" {escape(suffix)}" if suffix else "")
    return escape(title)


def _findings(job: ReportJob) -> list[_Finding]:
    """Learnings merged per source, duplicates dropped, sentences scored against the question."""
    weights = _query_weights(job.question, "")
    merged: dict[int, list[str]] = {}
    also: dict[int, dict[str, list[int]]] = {}
    for _query, text, numbers in job.learnings:
        if not numbers:
            continue
        bucket = merged.setdefault(numbers[0], [])
        for sentence in split_sentences(text):
            if sentence not in bucket:
                bucket.append(sentence)
            others = also.setdefault(numbers[0], {}).setdefault(sentence, [])
            others.extend(m for m in numbers[1:] if m not in others)
    docs = [tokenize(s) for sents in merged.values() for s in sents]
    idf = _idf(docs) if docs else {}
    titles = {s["n"]: set(tokenize(s["title"])) for s in job.sources}
    phrases = _phrases(job.question)
    findings: list[_Finding] = []
    for n, sentences in merged.items():
        title_rel = sum(weights.get(t, 0.0) * idf.get(t, 1.0) for t in titles.get(n, ()))
        scores = []
        for i, s in enumerate(sentences):
            tokens = tokenize(s)
            rel = sum(weights[t] * idf.get(t, 1.0) for t in set(tokens) & set(weights))
            rel += _phrase_bonus(tokens, phrases, idf) + title_rel * _lead(i)
            scores.append(rel / max(len(set(tokens)), 1) ** 0.3 * _kind_weight(s))
        cited_too = {s: m for s, m in also.get(n, {}).items() if m}
        findings.append(_Finding(n=n, sentences=sentences, scores=scores, also=cited_too))
    return findings
