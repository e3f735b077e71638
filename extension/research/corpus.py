"""Passages for the local search: chunking, and the built-in Python corpus.

The built-in corpus never imports arbitrary standard-library modules (`antigravity` opens a
browser, `this` prints): docstrings come from the stdlib *source files* through `ast`, plus
`pydoc_data.topics` and a fixed list of C modules whose import has no side effects.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypedDict

from .pyparse import parse_python

CORPUS_VERSION = "3"
PASSAGE_WORDS = 140  # a passage is a few paragraphs, never a whole document

_SKIP_STDLIB_DIRS = frozenset(
    {
        "test",
        "tests",
        "idlelib",
        "lib2to3",
        "tkinter",
        "turtledemo",
        "site-packages",
        "dist-packages",
        "ensurepip",
        "__pycache__",
        "pydoc_data",
        "venv",
    }
)
_SKIP_STDLIB_MODULES = frozenset({"antigravity", "this", "__phello__", "turtle", "__hello__"})
# Modules deprecated for removal (PEP 594, PEP 632, imp, asyncore): an answer should not send
# anyone there, and their old docstrings crowd out the modules that replaced them.
_REMOVED_STDLIB_MODULES = frozenset(
    {
        "aifc", "asynchat", "asyncore", "audioop", "cgi", "cgitb", "chunk", "crypt",
        "distutils", "imghdr", "imp", "mailcap", "msilib", "nis", "nntplib", "ossaudiodev",
        "pipes", "smtpd", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib",
    }
)  # fmt: skip
# Pure-Python twins of C modules: their docstrings document the public module.
_PRIVATE_ALIASES = {"_pydecimal": "decimal", "_pyio": "io", "_collections_abc": "collections.abc"}
# C modules without a Python source whose import has no side effects, under their public name.
_C_MODULES = {
    "builtins": "builtins",
    "itertools": "itertools",
    "math": "math",
    "cmath": "cmath",
    "time": "time",
    "sys": "sys",
    "gc": "gc",
    "_collections": "collections",
    "_struct": "struct",
    "_csv": "csv",
    "array": "array",
    "zlib": "zlib",
    "binascii": "binascii",
    "unicodedata": "unicodedata",
    "posix": "os",
    "select": "select",
    "_contextvars": "contextvars",
    "atexit": "atexit",
    "errno": "errno",
    "marshal": "marshal",
    "faulthandler": "faulthandler",
    "_socket": "socket",
}


LocateFn = Callable[[str], str]


class Passage(TypedDict):
    """A ranked unit of text and the source it belongs to."""

    id: str  # the source's stable id (same as its URL-like locator)
    title: str
    url: str
    text: str


def chunks(
    paragraphs: list[tuple[int, str]], limit: int = PASSAGE_WORDS
) -> Iterator[tuple[int, str]]:
    """Group (line, paragraph) pairs into passages of about `limit` words, keeping first lines."""
    start: int | None = None
    buf: list[str] = []
    count = 0
    for line, para in _split_long(paragraphs, limit):
        n = len(para.split())
        if buf and count + n > limit:
            yield start or 1, "\n\n".join(buf)
            buf, count, start = [], 0, None
        if start is None:
            start = line
        buf.append(para)
        count += n
    if buf:
        yield start or 1, "\n\n".join(buf)


def _split_long(paragraphs: list[tuple[int, str]], limit: int) -> Iterator[tuple[int, str]]:
    """Paragraphs longer than twice `limit` words cut into pieces of whole lines."""
    for line, para in paragraphs:
        if len(para.split()) <= 2 * limit:
            yield line, para
            continue
        piece: list[str] = []
        piece_start = line
        words = 0
        for offset, text in enumerate(para.splitlines()):
            n = len(text.split())
            if piece and words + n > limit:
                yield piece_start, "\n".join(piece)
                piece, words = [], 0
            if not piece:
                piece_start = line + offset
            piece.append(text)
            words += n
        if piece:
            yield piece_start, "\n".join(piece)


def paragraphs(text: str, first_line: int = 1) -> list[tuple[int, str]]:
    """Blank-line separated paragraphs with the line each starts on."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = first_line
    for offset, line in enumerate(text.splitlines()):
        if line.strip():
            if not buf:
                start = first_line + offset
            buf.append(line.rstrip())
        elif buf:
            out.append((start, "\n".join(buf)))
            buf = []
    if buf:
        out.append((start, "\n".join(buf)))
    return out


def _passages(source_id: str, title: str, text: str, url: str | None = None) -> list[Passage]:
    return [
        Passage(id=source_id, title=title, url=url or source_id, text=chunk)
        for _, chunk in chunks(paragraphs(text))
        if len(chunk.split()) >= 3
    ]


# ---------------------------------------------------------------- built-in corpus


def stdlib_dir() -> Path:
    """Where this interpreter's standard library sources live."""
    return Path(sysconfig.get_paths()["stdlib"])


def builtin_fingerprint_parts() -> list[str]:
    """What the built-in corpus depends on: corpus version, Python version and stdlib path."""
    return [CORPUS_VERSION, sys.version, str(stdlib_dir())]


def builtin_passages() -> list[Passage]:
    """Every passage of the built-in corpus, in a stable order."""
    out = list(_pydoc_topic_passages())
    for module, path in _stdlib_modules(stdlib_dir()):
        try:
            source = path.read_text(encoding="utf-8")
            tree = parse_python(source, filename=str(path))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        out.extend(ast_passages(tree, module, lambda name: f"python:{name}"))
    out.extend(_c_module_passages())
    return out


def _pydoc_topic_passages() -> Iterator[Passage]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data
        return
    for key in sorted(topics):
        text = topics[key]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        heading = lines[0] if lines else key
        title = f"{heading} (Python language reference)"
        yield from _passages(f"pydoc:topic:{key}", title, _strip_underlines(text))


def _strip_underlines(text: str) -> str:
    # pydoc topics underline headings with *** or ===; the underline is noise for ranking.
    return re.sub(r"^[*=\-~^\"]{3,}\s*$", "", text, flags=re.MULTILINE)


def _stdlib_modules(root: Path) -> Iterator[tuple[str, Path]]:
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in _SKIP_STDLIB_DIRS
            and d.isidentifier()
            and (Path(dirpath, d, "__init__.py").exists())
        )
        for filename in sorted(filenames):
            if not filename.endswith(".py"):
                continue
            stem = filename[:-3]
            parts = [*rel.parts] + ([] if stem == "__init__" else [stem])
            if not parts or not all(p.isidentifier() for p in parts):
                continue
            top = parts[0]
            if top in _SKIP_STDLIB_MODULES or top in _REMOVED_STDLIB_MODULES:
                continue
            if top.startswith("test"):
                continue
            if top.startswith("_"):
                if top not in _PRIVATE_ALIASES:
                    continue
                parts = [*_PRIVATE_ALIASES[top].split("."), *parts[1:]]
            if any(p.startswith("_") for p in parts[1:]):
                continue
            yield ".".join(parts), Path(dirpath, filename)


def ast_passages(tree: ast.Module, module: str, locate: LocateFn) -> list[Passage]:
    out: list[Passage] = []
    doc = ast.get_docstring(tree)
    if doc:
        out.extend(_passages(locate(module), f"module {module}", doc))

    def visit(body: list[ast.stmt], prefix: str, in_class: bool) -> None:
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if node.name.startswith("_") and node.name != "__init__":
                continue
            name = f"{prefix}.{node.name}"
            doc = ast.get_docstring(node)
            if isinstance(node, ast.ClassDef):
                if doc:
                    out.extend(_passages(locate(name), f"class {name}", doc))
                visit(node.body, name, True)
            elif doc:
                title = f"{name}()" if node.name != "__init__" else f"{prefix}() constructor"
                out.extend(_passages(locate(name), title, doc))

    visit(tree.body, module, False)
    return out


def _c_module_passages() -> Iterator[Passage]:
    for real, public in _C_MODULES.items():
        try:
            module = importlib.import_module(real)
        except ImportError:
            continue
        if module.__doc__ and public not in ("os", "collections"):
            yield from _passages(
                f"python:{public}", f"module {public}", inspect.cleandoc(module.__doc__)
            )
        for name in sorted(vars(module)):
            if name.startswith("_"):
                continue
            obj = vars(module)[name]
            if getattr(obj, "__module__", real) not in (real, public, None):
                continue
            qual = f"{public}.{name}"
            if inspect.isclass(obj):
                if obj.__doc__:
                    yield from _passages(
                        f"python:{qual}", f"class {qual}", inspect.cleandoc(obj.__doc__)
                    )
                for meth in sorted(vars(obj)):
                    if meth.startswith("_"):
                        continue
                    mdoc = getattr(vars(obj)[meth], "__doc__", None)
                    if isinstance(mdoc, str) and mdoc.strip():
                        yield from _passages(
                            f"python:{qual}.{meth}", f"{qual}.{meth}()", inspect.cleandoc(mdoc)
                        )
            elif callable(obj) and isinstance(obj.__doc__, str) and obj.__doc__.strip():
                title = f"{name}() (built-in)" if public == "builtins" else f"{qual}()"
                yield from _passages(f"python:{qual}", title, inspect.cleandoc(obj.__doc__))
