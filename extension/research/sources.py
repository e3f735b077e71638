"""Passages of the user's source folders (`search.sources`): .md, .txt, .ipynb, .py, .html.

Each passage is located by a URL-like `file:` locator relative to the server's root directory,
with the line it starts on (`file:notes/x.md#L10`) or, in notebooks, its cell
(`file:nb.ipynb#cell=3&L1`).
"""

from __future__ import annotations

import ast
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

from .corpus import CORPUS_VERSION, Passage, ast_passages, chunks, paragraphs

SOURCE_SUFFIXES = (".md", ".txt", ".ipynb", ".py", ".html", ".htm")
MAX_FILE_BYTES = 5_000_000
_SKIP_SOURCE_DIRS = frozenset(
    {".git", ".hg", ".svn", "__pycache__", "node_modules", ".ipynb_checkpoints", ".venv", "venv"}
)


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
    return _section_passages(rel, paragraphs(text))


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
