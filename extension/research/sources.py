"""Passages of the user's source folders (`search.sources`): .md, .txt, .ipynb, .py, .html,
.pdf and .docx.

Each passage is located by a URL-like `file:` locator relative to the server's root directory,
with the line it starts on (`file:notes/x.md#L10`), in notebooks its cell
(`file:nb.ipynb#cell=3&L1`), in PDFs its page (`file:papers/x.pdf#page=3`) and in Word
documents the line of their extracted text (one paragraph a line) it starts on
(`file:specs/x.docx#L12`).

A source folder is untrusted input: a file is read only if its resolved path lies inside the
root with no hidden or excluded component, it is a regular file no larger than the cap, and it
is opened so that nothing can block (a FIFO, a device). A file that fails any of these, or whose
parser gives up on it, is skipped and reported as `Skip(path, reason)`; the rest is still read.
"""

from __future__ import annotations

import ast
import json
import os
import re
import stat
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple

from .context import DEFAULT_MAX_SOURCE_FILE_BYTES
from .corpus import CORPUS_VERSION, Passage, ast_passages, chunks, paragraphs
from .documents import UnreadableDocument, docx_text, pdf_pages
from .pyparse import parse_python

SOURCE_SUFFIXES = (".md", ".txt", ".ipynb", ".py", ".html", ".htm", ".pdf", ".docx")
# Bumped when what a folder yields changes for the same files, so cached indexes are rebuilt.
SOURCES_VERSION = "3"
_SKIP_SOURCE_DIRS = frozenset(
    {".git", ".hg", ".svn", "__pycache__", "node_modules", ".ipynb_checkpoints", ".venv", "venv"}
)
# Never follow a last-moment symlink, never wait for a writer; absent flags (Windows) are 0.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
# What parsers raise on input they cannot handle: deep nesting, huge expressions, bad JSON.
_PARSE_ERRORS = (RecursionError, MemoryError, ValueError, SyntaxError, OverflowError)
# A .docx is a zip archive: its parts may unpack to at most this many times the file cap.
DOCX_EXPANSION = 20


class Skip(NamedTuple):
    """A file of a source folder that was not searched: its path under the root, and why."""

    path: str
    reason: str


class Skipped(Exception):
    """Raised by `read_source` with the reason a file must not be read."""


def source_files(folder: Path) -> list[Path]:
    """Files of a source folder that the local search reads, sorted, hidden folders skipped."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        for filename in sorted(filenames):
            if filename.lower().endswith(SOURCE_SUFFIXES) and not filename.startswith("."):
                found.append(Path(dirpath, filename))
    return found


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in _SKIP_SOURCE_DIRS


def folder_fingerprint_parts(folder: Path, max_bytes: int) -> list[str]:
    """Paths, sizes and modification times of a folder's files: any change rebuilds its index."""
    parts = [CORPUS_VERSION, SOURCES_VERSION, str(max_bytes), str(folder)]
    for path in source_files(folder):
        try:
            st = path.stat()  # stat never blocks, whatever the file is
        except OSError:
            continue
        parts.append(f"{path.relative_to(folder).as_posix()}\t{st.st_mtime_ns}\t{st.st_size}")
    return parts


def folder_passages(
    folder: Path, root_dir: Path, max_bytes: int
) -> tuple[list[Passage], list[Skip]]:
    """Passages of every readable file in `folder` (resolved, inside `root_dir`), located
    relative to the root, and the files skipped."""
    root_dir = root_dir.resolve()
    out: list[Passage] = []
    skipped: list[Skip] = []
    seen: set[str] = set()
    for path in source_files(folder):
        # Messages name the file as the user sees it, never where a link points.
        shown = path.relative_to(root_dir).as_posix()
        try:
            rel, data = read_source(path, root_dir, max_bytes)
        except Skipped as exc:
            skipped.append(Skip(shown, str(exc)))
            continue
        if rel in seen:  # two links to one file
            continue
        seen.add(rel)
        try:
            out.extend(file_passages(rel, data, max_bytes))
        except Skipped as exc:
            skipped.append(Skip(shown, str(exc)))
        except _PARSE_ERRORS as exc:
            skipped.append(Skip(shown, f"it cannot be parsed ({type(exc).__name__})"))
    return out, skipped


def read_source(path: Path, root_dir: Path, max_bytes: int) -> tuple[str, bytes]:
    """The path under `root_dir` (which must be resolved) and content of one source file;
    `Skipped` if it must not be read. Never blocks and never reads more than `max_bytes + 1`
    bytes."""
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a dangling link, a link loop
        raise Skipped("it is a broken link") from None
    if not resolved.is_relative_to(root_dir):
        raise Skipped("it points outside the server's root directory")
    rel = resolved.relative_to(root_dir)
    if any(_hidden(part) for part in rel.parts):
        raise Skipped("it points to a hidden file or folder")
    try:
        # Type and size before opening: opening some devices alone has effects.
        _check(os.stat(resolved, follow_symlinks=False), max_bytes)
        fd = os.open(resolved, _OPEN_FLAGS)
        with open(fd, "rb") as file:
            _check(os.fstat(fd), max_bytes)  # the path may have been replaced meanwhile
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise Skipped(f"it cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > max_bytes:  # it grew since the check
        raise Skipped(_too_large(max_bytes))
    return rel.as_posix(), data


def _check(st: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise Skipped("it is not a regular file")
    if st.st_size > max_bytes:
        raise Skipped(_too_large(max_bytes))


def _too_large(max_bytes: int) -> str:
    return f"it is larger than max_source_file_bytes ({max_bytes} bytes)"


def file_passages(
    rel: str, data: bytes, max_bytes: int = DEFAULT_MAX_SOURCE_FILE_BYTES
) -> list[Passage]:
    """Passages of one file's content, by its suffix; `rel` is its path under the server root.

    Raises `Skipped` for a PDF or Word file that cannot be read (encrypted, damaged), else
    what its parser raises on input it cannot handle (`_PARSE_ERRORS`)."""
    suffix = rel.lower().rsplit(".", 1)[-1]
    if suffix == "pdf":
        return _pdf_passages(rel, data)
    if suffix == "docx":
        return _docx_passages(rel, data, max_bytes)
    raw = data.decode("utf-8", errors="replace")
    if suffix == "ipynb":
        return _notebook_passages(rel, raw)
    if suffix == "py":
        try:
            tree = parse_python(raw, filename=rel)
        except (SyntaxError, ValueError):  # not Python after all: still worth reading as text
            return _text_passages(rel, raw)
        return _py_file_passages(rel, tree)
    if suffix in ("html", "htm"):
        return _html_passages(rel, raw)
    return _text_passages(rel, raw)


def _text_passages(rel: str, text: str, *, headings: bool = True) -> list[Passage]:
    """Markdown or plain text: passages under their nearest heading, located by first line."""
    return _section_passages(rel, paragraphs(text), headings=headings)


def _section_passages(
    rel: str, paras: list[tuple[int, str]], *, headings: bool = True
) -> list[Passage]:
    name = rel.rsplit("/", 1)[-1]
    out: list[Passage] = []
    heading = ""
    section: list[tuple[int, str]] = []

    def flush() -> None:
        for line, chunk in chunks(section):
            if len(chunk.split()) < 3:
                continue
            url = f"file:{rel}#L{line}"
            title = f"{name}: {heading}" if heading else name
            out.append(Passage(id=url, title=title, url=url, text=chunk))
        section.clear()

    for line, para in paras:
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
    notebook = json.loads(raw)
    cells = notebook.get("cells", []) if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise ValueError("not a notebook")
    out: list[Passage] = []
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("markdown", "code"):
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        if cell["cell_type"] == "code":
            # A comment is not a heading: keep the cell's lines as one plain section.
            passages = _section_passages(rel, paragraphs(text), headings=False)
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

    return ast_passages(tree, module, locate)


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
    paras = [(line, f"# {text}" if heading else text) for line, text, heading in parser.blocks]
    return _section_passages(rel, paras)


def _pdf_passages(rel: str, data: bytes) -> list[Passage]:
    """A PDF's passages located by page: `file:papers/x.pdf#page=3` opens that page."""
    try:
        pages = pdf_pages(data)
    except UnreadableDocument as exc:
        raise Skipped(str(exc)) from None
    out: list[Passage] = []
    for number, text in enumerate(pages, start=1):
        for passage in _text_passages(rel, text, headings=False):
            url = f"file:{rel}#page={number}"
            title = f"{passage['title']}, page {number}"
            out.append(Passage(id=url, title=title, url=url, text=passage["text"]))
    return out


def _docx_passages(rel: str, data: bytes, max_bytes: int) -> list[Passage]:
    """A Word document's passages under its headings, one line per paragraph."""
    try:
        text = docx_text(data, max_unpacked=DOCX_EXPANSION * max_bytes)
    except UnreadableDocument as exc:
        raise Skipped(str(exc)) from None
    return _text_passages(rel, text)
