"""Links for offline source ids: the Python documentation page and anchor of `python:` and
`pydoc:topic:` ids, and the path under the server root of `file:` ids.

`python:` ids name what the built-in corpus read: the module file the docstring came from
(`python:asyncio.tasks.Task.cancel`), while the documentation names the public object
(`asyncio.Task.cancel` on `library/asyncio-task.html`). The link drops implementation modules
that have no documentation of their own (`asyncio.tasks`, `json.decoder`) and finds the page in
`python_docs.json`, a table kept by hand from the layout of CPython's `Doc/` sources: modules
documented on another module's page or split over several pages (asyncio), the built-in names
(functions, types, exceptions) and the pages of the `pydoc` topic labels. Anything else is
documented as `library/<module>.html#<name>`, which is how Sphinx lays out the library
reference. Nothing is fetched: the table ships with the package.

A `file:` link is the file's path relative to the server root, percent-encoded, plus
`#page=N` for a PDF page (JupyterLab's PDF viewer opens that page); line and cell locators are
dropped because JupyterLab cannot open a file at them. JupyterLab resolves a relative link
against the folder of the document that shows it, so a document outside the root folder must
rewrite it with `link_from`.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from .corpus import stdlib_dir

DOCS_ROOT = "https://docs.python.org"


def docs_base(version: tuple[int, int] | None = None) -> str:
    """The documentation of this (or the given) Python version: `https://docs.python.org/3.X/`."""
    major, minor = version or sys.version_info[:2]
    return f"{DOCS_ROOT}/{major}.{minor}/"


def source_link(source_id: str, version: tuple[int, int] | None = None) -> str:
    """The link a reader follows for a source: documentation URL, server-root path or, for an
    id that already is a URL (web search), the id itself."""
    if source_id.startswith("python:"):
        return python_link(source_id[len("python:") :], version)
    if source_id.startswith("pydoc:topic:"):
        return topic_link(source_id[len("pydoc:topic:") :], version)
    if source_id.startswith("file:"):
        return file_link(source_id[len("file:") :])
    return source_id


def file_link(locator: str) -> str:
    """`papers/x.pdf#page=3` for `papers/x.pdf#page=3`, `notes/a%20b.md` for `notes/a b.md#L4`."""
    path, _, fragment = locator.rpartition("#")  # every locator has one; a name may hold "#"
    if not path:
        path, fragment = fragment, ""
    link = quote(path, safe="/")
    page = re.fullmatch(r"page=(\d+)", fragment)
    return f"{link}#page={page.group(1)}" if page else link


def link_from(document_path: str, link: str) -> str:
    """`link` (a `file_link`, relative to the server root) as seen from a document at
    `document_path` (also relative to the root), since JupyterLab resolves relative links
    against the document's folder; other links are returned as they are."""
    parts = urlsplit(link)
    if parts.scheme or parts.netloc or link.startswith("/"):
        return link
    folder = posixpath.dirname(document_path.strip("/"))
    relative = posixpath.relpath(unquote(parts.path), folder or ".")
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return quote(relative, safe="/") + fragment


def topic_link(key: str, version: tuple[int, int] | None = None) -> str:
    """The language reference section of a `pydoc` topic (its Sphinx label is the anchor)."""
    page = _table()["topics"].get(key)
    if page is None:  # a topic newer than the table: let the documentation's search find it
        return f"{docs_base(version)}search.html?q={quote(key)}"
    return f"{docs_base(version)}{page}#{key}"


def python_link(name: str, version: tuple[int, int] | None = None) -> str:
    """The documentation of a corpus name such as `asyncio.tasks.Task.cancel`."""
    base = docs_base(version)
    name = _rename(name)
    parts = name.split(".")
    if len(parts) > 1 and parts[-1] == "__init__":  # a constructor is documented with its class
        parts = parts[:-1]
    if parts[0] == "builtins":
        return base + _builtin_target(parts[1:])
    if parts[0] in _table()["undocumented"]:
        return f"{base}py-modindex.html"
    public = _rename(".".join(_public_parts(parts)))
    version_pages = _table()["version_pages"].get("{}.{}".format(*(version or sys.version_info)))
    page = _longest_prefix(public, version_pages or {}) or _longest_prefix(public, _pages())
    if page is not None:
        return f"{base}{page[1]}#{public}"
    module = _documented_module(public)
    page_path = f"library/{module.lower()}.html"
    if public == module or module in _table()["split_modules"]:
        # A split module's unlisted names: its overview page, not an anchor that may not exist.
        return f"{base}{page_path}#module-{module}"
    return f"{base}{page_path}#{public}"


def _builtin_target(parts: list[str]) -> str:
    table: dict[str, str] = _table()["builtins"]
    while parts:  # an undocumented method (list.append) links to its type
        name = ".".join(parts)
        if name in table:
            return f"{table[name]}#{name}"
        parts = parts[:-1]
    return "library/builtins.html#module-builtins"


def _public_parts(parts: list[str]) -> list[str]:
    """The name without implementation modules: `asyncio.tasks.Task` -> `asyncio.Task`."""
    module_len = _module_length(tuple(parts))
    documented = 1
    for k in range(2, module_len + 1):
        if ".".join(parts[:k]) in _submodules():
            documented = k
    return parts[:documented] + parts[module_len:]


@functools.lru_cache(maxsize=4096)
def _module_length(parts: tuple[str, ...]) -> int:
    """How many leading parts name a module of the standard library's source tree."""
    length = 1  # the first part is a module (a C module has no source file)
    folder = stdlib_dir()
    for k in range(1, len(parts)):
        folder = folder / parts[k - 1]
        if not (Path(folder, f"{parts[k]}.py").is_file() or Path(folder, parts[k]).is_dir()):
            break
        length = k + 1
    return length


def _documented_module(public: str) -> str:
    parts = public.split(".")
    best = parts[0]
    for k in range(2, len(parts) + 1):
        if ".".join(parts[:k]) in _submodules():
            best = ".".join(parts[:k])
    return best


def _rename(name: str) -> str:
    """Apply the table's renames: a whole name, or a prefix ending in "." (a class's members)."""
    renames: dict[str, str] = _table()["renames"]
    for old in sorted(renames, key=len, reverse=True):
        new = renames[old]
        if old.endswith("."):
            if name.startswith(old):
                return new + name[len(old) :]
        elif name == old or name.startswith(old + "."):
            return new + name[len(old) :]
    return name


def _longest_prefix(name: str, pages: dict[str, str]) -> tuple[str, str] | None:
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        prefix = ".".join(parts[:k])
        if prefix in pages:
            return prefix, pages[prefix]
    return None


def _pages() -> dict[str, str]:
    pages: dict[str, str] = _table()["pages"]
    return pages


@functools.lru_cache(maxsize=1)
def _submodules() -> frozenset[str]:
    return frozenset(_table()["submodules"])


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("python_docs.json").read_text(encoding="utf-8")
    table: dict[str, Any] = json.loads(text)
    return table
