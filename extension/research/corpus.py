"""Passages for the local search: the built-in Python corpus and the user's source folders.

The built-in corpus never imports arbitrary standard-library modules (`antigravity` opens a
browser, `this` prints): docstrings come from the stdlib *source files* through `ast`, plus
`pydoc_data.topics` and a fixed list of C modules whose import has no side effects.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import re
import sys
import sysconfig
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import TypedDict

CORPUS_VERSION = "2"
PASSAGE_WORDS = 140  # a passage is a few paragraphs, never a whole document
SOURCE_SUFFIXES = (".md", ".txt", ".ipynb", ".py", ".html", ".htm")
MAX_FILE_BYTES = 5_000_000

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
_SKIP_SOURCE_DIRS = frozenset(
    {".git", ".hg", ".svn", "__pycache__", "node_modules", ".ipynb_checkpoints", ".venv", "venv"}
)


LocateFn = Callable[[str], str]


class Passage(TypedDict):
    """A ranked unit of text and the source it belongs to."""

    id: str  # the source's stable id (same as its URL-like locator)
    title: str
    url: str
    text: str


def _chunks(
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


def _paragraphs(text: str, first_line: int = 1) -> list[tuple[int, str]]:
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
        for _, chunk in _chunks(_paragraphs(text))
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
            tree = ast.parse(source, filename=str(path))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        out.extend(_ast_passages(tree, module, lambda name: f"python:{name}"))
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
            if top in _SKIP_STDLIB_MODULES or top.startswith("test"):
                continue
            if top.startswith("_"):
                if top not in _PRIVATE_ALIASES:
                    continue
                parts = [*_PRIVATE_ALIASES[top].split("."), *parts[1:]]
            if any(p.startswith("_") for p in parts[1:]):
                continue
            yield ".".join(parts), Path(dirpath, filename)


def _ast_passages(tree: ast.Module, module: str, locate: LocateFn) -> list[Passage]:
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


# ---------------------------------------------------------------- user source folders


def source_files(folder: Path) -> list[Path]:
    """Files of a source folder that the local search reads, sorted, hidden folders skipped."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(
            d for d in dirnames if d not in _SKIP_SOURCE_DIRS and not d.startswith(".")
        )
        for filename in sorted(filenames):
            if filename.lower().endswith(SOURCE_SUFFIXES) and not filename.startswith("."):
                found.append(Path(dirpath, filename))
    return found


def folder_fingerprint_parts(folder: Path) -> list[str]:
    """Paths, sizes and modification times of a folder's files: any change rebuilds its index."""
    parts = [CORPUS_VERSION, str(folder)]
    for path in source_files(folder):
        try:
            st = path.stat()
        except OSError:
            continue
        parts.append(f"{path.relative_to(folder).as_posix()}\t{st.st_mtime_ns}\t{st.st_size}")
    return parts


def folder_passages(folder: Path, root_dir: Path) -> list[Passage]:
    """Passages of every readable file in `folder`, located relative to the server root."""
    out: list[Passage] = []
    for path in source_files(folder):
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            raw = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        try:
            rel = path.resolve().relative_to(root_dir).as_posix()
        except ValueError:  # a symlink inside the folder that points outside the root
            continue
        out.extend(file_passages(rel, raw))
    return out


def file_passages(rel: str, raw: str) -> list[Passage]:
    """Passages of one file's text, by its suffix; `rel` is its path under the server root."""
    suffix = rel.lower().rsplit(".", 1)[-1]
    if suffix == "ipynb":
        return _notebook_passages(rel, raw)
    if suffix == "py":
        try:
            tree = ast.parse(raw)
        except (SyntaxError, ValueError):
            return _text_passages(rel, raw)
        return _py_file_passages(rel, tree)
    if suffix in ("html", "htm"):
        return _html_passages(rel, raw)
    return _text_passages(rel, raw)


def _text_passages(rel: str, text: str) -> list[Passage]:
    """Markdown or plain text: passages under their nearest heading, located by first line."""
    return _section_passages(rel, _paragraphs(text))


def _section_passages(
    rel: str, paragraphs: list[tuple[int, str]], *, headings: bool = True
) -> list[Passage]:
    name = rel.rsplit("/", 1)[-1]
    out: list[Passage] = []
    heading = ""
    section: list[tuple[int, str]] = []

    def flush() -> None:
        for line, chunk in _chunks(section):
            if len(chunk.split()) < 3:
                continue
            url = f"file:{rel}#L{line}"
            title = f"{name}: {heading}" if heading else name
            out.append(Passage(id=url, title=title, url=url, text=chunk))
        section.clear()

    for line, para in paragraphs:
        match = re.match(r"^#{1,6}\s+(.+)$", para.splitlines()[0]) if headings else None
        if match:
            flush()
            heading = match.group(1).strip().strip("#").strip()
            rest = "\n".join(para.splitlines()[1:]).strip()
            if rest:
                section.append((line + 1, rest))
            continue
        section.append((line, para))
    flush()
    return out


def _notebook_passages(rel: str, raw: str) -> list[Passage]:
    try:
        cells = json.loads(raw).get("cells", [])
    except (ValueError, AttributeError):
        return []
    out: list[Passage] = []
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("markdown", "code"):
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        if cell["cell_type"] == "code":
            # A comment is not a heading: keep the cell's lines as one plain section.
            passages = _section_passages(rel, _paragraphs(text), headings=False)
        else:
            passages = _text_passages(rel, text)
        for passage in passages:
            # Notebooks have no stable line numbers: locate by cell instead.
            line = passage["url"].rsplit("#L", 1)[-1]
            url = f"file:{rel}#cell={number}&L{line}"
            out.append(Passage(id=url, title=passage["title"], url=url, text=passage["text"]))
    return out


def _py_file_passages(rel: str, tree: ast.Module) -> list[Passage]:
    lines: dict[str, int] = {"": 1}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            lines.setdefault(node.name, node.lineno)
    module = rel[:-3].replace("/", ".")

    def locate(name: str) -> str:
        last = name.rsplit(".", 1)[-1] if name != module else ""
        return f"file:{rel}#L{lines.get(last, 1)}"

    return _ast_passages(tree, module, locate)


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[int, str, bool]] = []  # (line, text, is_heading)
        self._skip = 0
        self._heading = False
        self._buf: list[str] = []
        self._line = 1

    def _flush(self) -> None:
        text = " ".join("".join(self._buf).split())
        if text:
            self.blocks.append((self._line, text, self._heading))
        self._buf = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "noscript"):
            self._skip += 1
        elif tag in (
            "p",
            "div",
            "li",
            "pre",
            "section",
            "article",
            "br",
            "tr",
            "h1",
            "h2",
            "h3",
            "h4",
        ):
            self._flush()
            self._heading = tag in ("h1", "h2", "h3", "h4")
            self._line = self.getpos()[0]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript"):
            self._skip = max(0, self._skip - 1)
        elif tag in ("p", "div", "li", "pre", "section", "article", "h1", "h2", "h3", "h4"):
            self._flush()
            self._heading = False

    def handle_data(self, data: str) -> None:
        if not self._skip:
            if not self._buf:
                self._line = self.getpos()[0]
            self._buf.append(data)


def _html_passages(rel: str, raw: str) -> list[Passage]:
    parser = _HTMLText()
    parser.feed(raw)
    parser.close()
    parser._flush()
    paragraphs = [(line, f"# {text}" if heading else text) for line, text, heading in parser.blocks]
    return _section_passages(rel, paragraphs)
