"""`%research` / `%%research`: `%load_ext jupyter_deepresearch.kernel_helpers`."""

from __future__ import annotations

import re
import shlex
from collections import deque
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

USAGE = (
    "%research needs a question: `%research How do generators work?` "
    "(options first: `%research --wait -o task How ...?`; see `%research?`)"
)

# `%research ...?`: IPython reads a trailing `?` as a help request for the word before it.
_QUESTION_LINE = re.compile(r"^(?P<indent>[ \t]*)%research(?P<rest>[ \t]+\S.*\?)[ \t]*$")


def keep_question_marks(lines: list[str]) -> list[str]:
    """Input transformer: `%research ...?` lines become a plain call of the magic.

    It runs before IPython's help-syntax transformer, which would otherwise turn the line into
    `pinfo` of its last word ("Object `work` not found.").
    """
    if lines and lines[0].lstrip().startswith("%%"):
        return lines  # a cell magic owns the whole cell; its body is never help syntax
    out = []
    for line in lines:
        match = _QUESTION_LINE.match(line.rstrip("\n"))
        if match is None or not match["rest"].strip().rstrip("?"):  # `%research ??` is help
            out.append(line)
            continue
        call = f"get_ipython().run_line_magic('research', {match['rest'].strip()!r})"
        out.append(match["indent"] + call + ("\n" if line.endswith("\n") else ""))
    return out


def register(ipython: Any) -> None:
    """Add the magics and the question-mark transformer (once, however often it is loaded)."""
    ipython.register_magics(ResearchMagics)
    cleanup = ipython.input_transformers_cleanup
    if keep_question_marks not in cleanup:
        cleanup.append(keep_question_marks)
        _ask_questions_of_this_cell(ipython)


def _ask_questions_of_this_cell(ipython: Any) -> None:
    """Run the `%research ...?` lines of the cell that loads the extension as questions.

    IPython transforms a whole cell before running it, so in the cell that runs `%load_ext`
    those lines were already turned into help requests (`pinfo work`) before the transformer
    above existed. Until the cell ends, such a `pinfo` call runs the question instead.
    """
    questions = deque(_questions_after_load(_running_cell(ipython)))
    if not questions:
        return
    magics = ipython.magics_manager.magics["line"]
    original = magics.get("pinfo")
    if original is None:
        return

    def pinfo(parameter_s: str = "", namespaces: Any = None) -> Any:
        if questions and _help_target(questions[0]) == parameter_s.strip():
            return ipython.run_line_magic("research", questions.popleft())
        return original(parameter_s, namespaces)

    def restore(*_: Any) -> None:
        magics["pinfo"] = original
        ipython.events.unregister("post_run_cell", restore)

    magics["pinfo"] = pinfo
    ipython.events.register("post_run_cell", restore)


def _running_cell(ipython: Any) -> str:
    # Kernels store a cell's raw text in the history before they run it.
    history = getattr(ipython, "history_manager", None)
    raw = getattr(history, "input_hist_raw", None)
    return str(raw[-1]) if raw else ""


def _questions_after_load(cell: str) -> list[str]:
    lines = cell.splitlines()
    start = next((n for n, line in enumerate(lines) if "load_ext" in line), -1)
    questions = []
    for line in lines[start + 1 :]:
        match = _QUESTION_LINE.match(line)
        if match is not None and match["rest"].strip().rstrip("?"):
            questions.append(match["rest"].strip())
    return questions


def _help_target(question: str) -> str:
    """The name IPython's help syntax takes from `question` (`work` of "How does it work?")."""
    match = re.search(r"([\w.]+)\?+$", question)
    return match[1] if match else ""


@magics_class
class ResearchMagics(Magics):
    """Start or reattach to research from a cell, with the widget shown."""

    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", help="store the ResearchTask in this variable")
    @argument("--restart", action="store_true", help="start the research again from scratch")
    @argument("--wait", action="store_true", help="block until the report is ready")
    @argument("--breadth", type=int, help="search queries per round (report.breadth)")
    @argument("--depth", type=int, help="rounds of research (report.depth)")
    @argument("--language", help="language of the report (report.language)")
    @argument("--ai", metavar="PROVIDER", help="LLM provider (ai.provider)")
    @argument("--model", help="model name (ai.model)")
    @argument("--search", metavar="PROVIDER", help="search provider (search.provider)")
    @argument("--max-results", type=int, help="results per search query (search.max_results)")
    @line_cell_magic
    def research(self, line: str, cell: str | None = None) -> None:
        """`%research [options] QUESTION`, or `%%research [options]` with the question below."""
        from . import research

        options, rest = _split_options(self.research.parser, line)
        args = parse_argstring(self.research, options)
        query = cell if cell is not None and cell.strip() else rest
        if not query.strip():
            raise UsageError(USAGE)
        report = _section(language=args.language, breadth=args.breadth, depth=args.depth)
        ai = _section(provider=args.ai, model=args.model)
        search = _section(provider=args.search, max_results=args.max_results)
        task = research(query, ai=ai, search=search, report=report, restart=args.restart)
        if args.out and self.shell is not None:
            self.shell.user_ns[args.out] = task
        if args.wait:
            task.wait()


def _section(**values: Any) -> dict[str, Any] | None:
    given = {k: v for k, v in values.items() if v is not None}
    return given or None


def _split_options(parser: Any, line: str) -> tuple[str, str]:
    """Leading `--options` and the question after them, kept verbatim (quotes, apostrophes)."""
    rest = line.strip()
    taken: list[str] = []
    while rest.startswith("-"):
        word, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        taken.append(word)
        action = parser._option_string_actions.get(word.split("=")[0])
        if action is not None and action.nargs != 0 and "=" not in word:
            value, _, rest = rest.partition(" ")
            rest = rest.lstrip()
            taken.append(shlex.quote(value))
    return " ".join(taken), rest
