"""Python sources parse the same from many threads, and CPython's spurious AST error is retried."""

from __future__ import annotations

import ast
import sysconfig
import threading
from pathlib import Path
from typing import Any

import pytest

from jupyter_deepresearch.extension.research import pyparse
from jupyter_deepresearch.extension.research.pyparse import parse_python

SPURIOUS = "AST constructor recursion depth mismatch (before=33, after=34)"


def test_a_spurious_recursion_depth_mismatch_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    real_parse = ast.parse
    calls = []

    def flaky_parse(source: str, *args: Any, **kwargs: Any) -> ast.Module:
        calls.append(source)
        if len(calls) == 1:
            raise SystemError(SPURIOUS)  # what CPython 3.11 raised in CI, racing another thread
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(pyparse.ast, "parse", flaky_parse)
    tree = parse_python("def f():\n    '''Doc.'''\n", "f.py")
    assert len(calls) == 2
    assert ast.get_docstring(tree.body[0]) == "Doc."  # type: ignore[arg-type]


def test_a_mismatch_that_persists_is_raised_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def always(source: str, *args: Any, **kwargs: Any) -> ast.Module:
        raise SystemError(SPURIOUS)

    monkeypatch.setattr(pyparse.ast, "parse", always)
    with pytest.raises(SystemError, match="recursion depth mismatch"):
        parse_python("x = 1")


def test_other_errors_pass_through_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SyntaxError):
        parse_python("def (:", "broken.py")
    calls = []

    def other(source: str, *args: Any, **kwargs: Any) -> ast.Module:
        calls.append(source)
        raise SystemError("something else")

    monkeypatch.setattr(pyparse.ast, "parse", other)
    with pytest.raises(SystemError, match="something else"):
        parse_python("x = 1")
    assert len(calls) == 1


def test_many_threads_parsing_the_standard_library_get_the_same_trees() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = [p.read_text(encoding="utf-8") for p in sorted(stdlib.glob("[a-m]*.py"))[:40]]
    expected = [ast.dump(ast.parse(s)) for s in sources]
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
