"""Our own tokenizer, sentence splitter, keyphrases and the extractive writer's pieces."""

from __future__ import annotations

from jupyter_deepresearch.extension.research.base import (
    Hit,
    Learnings,
    NumberedSource,
    QuerySpec,
    ReportJob,
)
from jupyter_deepresearch.extension.research.citations import (
    cited_numbers,
    renumber,
    sources_section,
    strip_citations,
)
from jupyter_deepresearch.extension.research.extractive import (
    compose_report,
    extract_learnings,
    make_plan,
    make_queries,
    passage_sentences,
)
from jupyter_deepresearch.extension.research.text import (
    code_names,
    keyphrases,
    split_sentences,
    tokenize,
)


def test_tokenize_stems_splits_identifiers_and_keeps_keywords() -> None:
    assert tokenize("Cancelling tasks") == ["cancel", "task"]
    assert tokenize("create_task") == ["create_task", "creat", "task"]
    assert tokenize("CancelledError") == ["cancellederror", "cancel", "error"]
    assert tokenize("asyncio.Task.cancel") == ["asyncio.task.cancel", "asyncio", "task", "cancel"]
    assert tokenize("the with statement") == ["kw.with", "statement"]
    assert tokenize("with a friend and the") == ["friend"]


def test_split_sentences_respects_abbreviations_and_names() -> None:
    text = "Use e.g. asyncio.run() here. Then call Task.cancel. It works! Really? Yes."
    assert split_sentences(text) == [
        "Use e.g. asyncio.run() here.",
        "Then call Task.cancel.",
        "It works!",
        "Really?",
        "Yes.",
    ]
    assert split_sentences("") == []


def test_keyphrases_are_deterministic() -> None:
    phrases = keyphrases("How does asyncio cancel a task?")
    assert phrases == keyphrases("How does asyncio cancel a task?")
    assert "task" in phrases and any("asyncio" in p for p in phrases)


def test_code_names() -> None:
    text = "Raise CancelledError; see Task.cancelled() and `wait_for()`, e.g. shield()."
    assert code_names(text) == ["CancelledError", "Task.cancelled()", "wait_for()", "shield()"]


def test_passage_sentences_drop_code_and_grammar() -> None:
    text = (
        "Wait for a future, shielding it from cancellation.\n\nThe statement\n\n"
        "    res = await shield(task)\n\n>>> 1 + 1\n2\n\n"
        '   with_stmt ::= "with" expression\n\nSee :func:`asyncio.wait` for details.\n'
    )
    assert passage_sentences(text) == [
        "Wait for a future, shielding it from cancellation.",
        "See `asyncio.wait` for details.",
    ]


def test_citations_helpers() -> None:
    assert cited_numbers("a [2] b [1, 3] c [2][4] [x](http://y)") == [2, 1, 3, 4]
    assert strip_citations("A fact [1][2].") == ("A fact.", [1, 2])
    sources = [
        NumberedSource(n=n, id=f"s{n}", title=f"T{n}", url=f"python:m{n}") for n in (1, 2, 3)
    ]
    parts, kept = renumber(["x [3] y [1]", " z [3][9]"], sources)
    assert parts == ["x [1] y [2]", " z [1]"]
    assert [(s["n"], s["id"]) for s in kept] == [(1, "s3"), (2, "s1")]
    assert sources_section(kept) == "## Sources\n\n1. T3 — `python:m3`\n2. T1 — `python:m1`\n"


def test_plan_and_queries_from_the_question() -> None:
    plan = make_plan("How does asyncio cancel a task?")
    assert plan.startswith("## Research plan") and "`task`" in plan
    first = make_queries("How does asyncio cancel a task?", [], 3)
    assert first[0]["query"] == "How does asyncio cancel a task?"
    assert len({q["query"] for q in first}) == 3
    previous: list[Learnings] = [
        {"query": q["query"], "learnings": [], "followups": ["CancelledError"]} for q in first
    ]
    second = make_queries("How does asyncio cancel a task?", previous, 2)
    assert "CancelledError" in second[0]["query"]
    assert not {q["query"] for q in second} & {q["query"] for q in first}


def test_learnings_cite_their_hits() -> None:
    hits: list[Hit] = [
        {
            "id": "python:a.cancel",
            "title": "a.cancel()",
            "url": "python:a.cancel",
            "text": "Request that this task cancel itself. Unrelated words follow here.",
        },
        {"id": "python:b", "title": "b", "url": "python:b", "text": "Nothing relevant in here."},
    ]
    spec: QuerySpec = {"query": "cancel task", "goal": ""}
    learnings = extract_learnings("How to cancel a task?", spec, hits)
    first = learnings["learnings"][0]
    assert first["text"].startswith("Request that this task cancel itself.")
    assert first["sources"] == ["python:a.cancel"]
    assert all(item["sources"] for item in learnings["learnings"])


def test_report_without_findings_says_so() -> None:
    job = ReportJob(question="Q?", plan="", language="en", learnings=[], sources=[])
    sections, sources = compose_report(job)
    assert sources == [] and "nothing relevant" in "".join(sections)


def test_report_notes_it_cannot_translate() -> None:
    sources = [NumberedSource(n=1, id="s", title="T", url="python:t")]
    job = ReportJob(
        question="Wie?",
        plan="",
        language="de",
        learnings=[("q", "A sentence here.", [1])],
        sources=sources,
    )
    sections, _ = compose_report(job)
    assert "cannot translate" in "".join(sections)
