"""Parse Python source from worker threads without tripping CPython 3.11's shared AST state.

CPython 3.11 keeps the AST constructor's recursion counter in per-interpreter state, which each
`ast.parse` resets when it starts, so two threads building trees at once (an abandoned index
build still running while a new one starts, or another library's `ast.parse`, pytest's among
them) can make a correct parse fail with a spurious ``SystemError: AST constructor recursion
depth mismatch`` (python/cpython#106905). Our own parses take one lock so they never race each
other; a parse that still meets the error (racing someone else's) is simply tried again, since
the source did not change and the error says nothing about it. Compiling source to bytecode
(imports) builds no Python AST objects and is not affected.
"""

from __future__ import annotations

import ast
import threading

_PARSE_LOCK = threading.Lock()
_ATTEMPTS = 3


def parse_python(source: str, filename: str = "<unknown>") -> ast.Module:
    """`ast.parse(source)`, retried when CPython reports its spurious recursion-depth mismatch.

    Raises what `ast.parse` raises for the source itself (SyntaxError, ValueError, ...)."""
    for attempt in range(_ATTEMPTS):
        try:
            with _PARSE_LOCK:
                return ast.parse(source, filename=filename)
        except SystemError as error:
            if "recursion depth mismatch" not in str(error) or attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # the loop returns or raises
