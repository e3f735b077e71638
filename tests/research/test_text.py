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
    name_coverage,
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


def test_a_short_summary_line_counts_only_as_the_first_sentence() -> None:
    text = "@contextmanager decorator.\n\nTypical usage:\n\n    @contextmanager\n\nShort line."
    assert passage_sentences(text) == ["@contextmanager decorator."]


def test_the_question_names_an_object_by_its_own_name() -> None:
    question = "How do I join path components with pathlib?"
    # Own name run together from two adjacent words, plus its module named too.
    assert name_coverage("python:pathlib.PurePath.joinpath", question) == (2, 3)
    assert name_coverage("python:posixpath.join", question) == (1, 1)
    assert name_coverage("python:pathlib.PurePath.name", question) == (0, 0)
    # Every part of a compound name must be asked for, stop words too.
    assert name_coverage("python:sysconfig.get_path", question) == (0, 0)
    assert name_coverage("python:dataclasses.make_dataclass", "Create a dataclass?") == (0, 0)
    assert name_coverage("python:dataclasses.dataclass", "Create a dataclass?") == (1, 1)
    assert name_coverage("pydoc:topic:with", "What does the with statement do?") == (0, 0)


def _hit(source_id: str, text: str) -> Hit:
    return {"id": source_id, "title": source_id[7:] + "()", "url": source_id, "text": text}


def test_the_named_object_and_the_top_hit_lead_the_report() -> None:
    question = "How do I write a context manager with a generator function?"
    hits = [
        _hit("python:m.top", "Something else entirely, said at some length here."),
        _hit("python:g.Generator", "A generator function writes a context manager for you."),
        _hit("python:contextlib.contextmanager", "@contextmanager decorator."),
    ]
    learnings = extract_learnings(question, {"query": question, "goal": ""}, hits)
    # Neither shares a word with the question, yet both get a learning.
    cited = [item["sources"][0] for item in learnings["learnings"]]
    assert cited == ["python:m.top", "python:g.Generator", "python:contextlib.contextmanager"]
    numbers = {h["id"]: n for n, h in enumerate(hits, 1)}
    job = ReportJob(
        question=question,
        plan="",
        language="en",
        learnings=[
            (question, item["text"], [numbers[s] for s in item["sources"]])
            for item in learnings["learnings"]
        ],
        sources=[
            NumberedSource(n=n, id=h["id"], title=h["title"], url=h["url"])
            for n, h in enumerate(hits, 1)
        ],
    )
    sections, sources = compose_report(job)
    answer = "".join(sections).split("## Answer", 1)[1]
    first_point = answer.strip().splitlines()[0]
    assert first_point == "- **`contextlib.contextmanager()`**: @contextmanager decorator. [1]"
    assert sources[0]["id"] == "python:contextlib.contextmanager"


def test_a_sentence_two_sources_say_cites_both() -> None:
    same = "Return the index where to insert item x in list a, assuming a is sorted."
    hits = [
        _hit("python:bisect.bisect_right", f"{same} Insert just after the rightmost x."),
        _hit("python:bisect.bisect_left", f"{same} Insert just before the leftmost x."),
    ]
    question = "Where do I insert x in a sorted list?"
    learnings = extract_learnings(question, {"query": question, "goal": ""}, hits)
    shared = [item for item in learnings["learnings"] if item["text"] == same]
    assert shared and shared[0]["sources"] == [
        "python:bisect.bisect_right",
        "python:bisect.bisect_left",
    ]
    sources = [
        NumberedSource(n=n, id=h["id"], title=h["title"], url=h["url"])
        for n, h in enumerate(hits, 1)
    ]
    job = ReportJob(
        question=question,
        plan="",
        language="en",
        learnings=[(question, same, [1, 2]), (question, "Insert just after the rightmost x.", [1])],
        sources=sources,
    )
    sections, cited = compose_report(job)
    assert f"{same} [1][2] Insert just after the rightmost x. [1]" in "".join(sections)
    assert [s["id"] for s in cited] == ["python:bisect.bisect_right", "python:bisect.bisect_left"]


def test_a_sentence_with_the_questions_phrase_comes_first() -> None:
    hits = [
        _hit("python:a.first", "Each variable, its environment."),
        _hit("python:b.second", "Get an environment variable, or a default."),
    ]
    question = "How do I read an environment variable?"
    learnings = extract_learnings(question, {"query": question, "goal": ""}, hits)
    job = ReportJob(
        question=question,
        plan="",
        language="en",
        learnings=[
            (question, item["text"], [int(item["sources"][0] == "python:b.second") + 1])
            for item in learnings["learnings"]
        ],
        sources=[
            NumberedSource(n=n, id=h["id"], title=h["title"], url=h["url"])
            for n, h in enumerate(hits, 1)
        ],
    )
    _, cited = compose_report(job)
    assert [s["id"] for s in cited] == ["python:b.second", "python:a.first"]


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
