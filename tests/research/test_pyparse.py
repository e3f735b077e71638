"""Python sources parse the same from many threads, and CPython's spurious AST error is retried."""

from __future__ import annotations

import ast
import sysconfig
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_deepresearch.extension.research import pyparse
from jupyter_deepresearch.extension.research.pyparse import parse_python

SPURIOUS = "AST constructor recursion depth mismatch (before=33, after=34)"
# `ast.parse` is patched for the whole process while other threads parse too (an index build a
# cancelled test abandoned, pytest formatting a report): only this source meets the fault.
SOURCE = 'def f():\n    """Doc."""\n'


def patch_parse(monkeypatch: pytest.MonkeyPatch, fault: Callable[[int], None]) -> list[str]:
    """Make each `ast.parse` of `SOURCE` call `fault(attempt)` first; returns those calls."""
    real_parse = ast.parse
    calls: list[str] = []

    def parse(source: str, *args: Any, **kwargs: Any) -> ast.Module:
        if source == SOURCE:
            calls.append(source)
            fault(len(calls))
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(pyparse.ast, "parse", parse)
    return calls


def test_a_spurious_recursion_depth_mismatch_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    def first_attempt_fails(attempt: int) -> None:
        if attempt == 1:
            raise SystemError(SPURIOUS)  # what CPython 3.11 raised in CI, racing another thread

    calls = patch_parse(monkeypatch, first_attempt_fails)
    tree = parse_python(SOURCE, "f.py")
    assert len(calls) == 2
    assert ast.get_docstring(tree.body[0]) == "Doc."  # type: ignore[arg-type]


def test_a_mismatch_that_persists_is_raised_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def always(attempt: int) -> None:
        raise SystemError(SPURIOUS)

    calls = patch_parse(monkeypatch, always)
    with pytest.raises(SystemError, match="recursion depth mismatch"):
        parse_python(SOURCE)
    assert len(calls) == 3


def test_other_errors_pass_through_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SyntaxError):
        parse_python("def (:", "broken.py")

    def other(attempt: int) -> None:
        raise SystemError("something else")

    calls = patch_parse(monkeypatch, other)
    with pytest.raises(SystemError, match="something else"):
        parse_python(SOURCE)
    assert len(calls) == 1


def test_many_threads_parsing_the_standard_library_get_the_same_trees() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = [p.read_text(encoding="utf-8") for p in sorted(stdlib.glob("[a-m]*.py"))[:40]]
    expected = [ast.dump(parse_python(s)) for s in sources]  # one thread at a time
    results: dict[int, list[str]] = {}

    def parse_all(worker: int) -> None:
        results[worker] = [ast.dump(parse_python(s)) for s in sources]

    threads = [threading.Thread(target=parse_all, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results) == [0, 1, 2, 3]
    assert all(found == expected for found in results.values())
