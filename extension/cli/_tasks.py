"""The subcommands that work on tasks: list, show, tail, submit, pause, resume, cancel, restart,
delete. Each prints what a script wants on stdout and talks to people on stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from traitlets import Bool, Enum, Int, List, Unicode

from jupyter_deepresearch.extension.ids import TASK_ID_RULE, is_task_id
from jupyter_deepresearch.extension.lifecycle import Status
from jupyter_deepresearch.extension.models import TaskInfo
from jupyter_deepresearch.kernel_helpers._client import ResearchClient
from jupyter_deepresearch.kernel_helpers._render import markdown, short_query
from jupyter_deepresearch.kernel_helpers._state import TaskSnapshot

from . import _local as local
from ._base import ClientCommand, CommandError, StoreCommand
from ._exit import ExitCode
from ._follow import exit_code, follow, status_line

STATUSES = [status.value for status in Status]


def checked_id(task_id: str) -> str:
    if not is_task_id(task_id):
        raise CommandError(f"not a task id ({TASK_ID_RULE}): {task_id!r}")
    return task_id


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


class ListCommand(StoreCommand):
    """List tasks, newest first: id, status, progress, last update, question."""

    name = "jupyter-deepresearch-list"
    description = __doc__
    status = Enum(STATUSES, None, allow_none=True, config=True, help="Only tasks with this status.")
    limit = Int(None, allow_none=True, config=True, help="At most this many tasks.")
    offset = Int(0, config=True, help="Skip this many tasks (of those the filters keep).")
    query = Unicode(
        "", config=True, help="Only tasks whose question contains this text (any case)."
    )
    aliases: dict[str, Any] = {  # noqa: RUF012 (read by traitlets)
        **StoreCommand.aliases,
        "status": "ListCommand.status",
        "limit": "ListCommand.limit",
        "offset": "ListCommand.offset",
        "query": "ListCommand.query",
    }

    def run(self) -> int:
        if self.extra_args:
            raise CommandError(f"unexpected arguments: {' '.join(self.extra_args)}")
        if self.limit is not None and self.limit < 1:
            raise CommandError("--limit must be at least 1")
        if self.offset < 0:
            raise CommandError("--offset must be at least 0")
        text = self.query or None
        if self.reads_store:
            store = local.open_store(self.storage_dir, self.redis_url)
            tasks = local.run(
                store,
                lambda s: local.list_tasks(s, self.status, self.limit, self.offset, text),
            )
        else:
            with self.client() as client:
                tasks = client.list(self.status, self.limit, offset=self.offset, text=text)
        if self.as_json:
            # Without `result`: reports are what `show` is for (GET tasks leaves them out too).
            print_json([info.model_dump(mode="json", exclude={"result"}) for info in tasks])
            return ExitCode.ok
        for info in tasks:
            updated = info.updated_at.astimezone().strftime("%Y-%m-%d %H:%M")
            query = short_query(str(info.request.get("query", "")), 60)
            status = f"{info.status.value:<9}  {info.percentage:3d}%"
            print(f"{info.task_id}  {status}  {updated}  {query}")
        return ExitCode.ok


class ShowCommand(StoreCommand):
    """Show one task: status, progress and its report (so far) as Markdown."""

    name = "jupyter-deepresearch-show"
    description = __doc__

    def run(self) -> int:
        task_id = checked_id(self.task_id_arg())
        if self.reads_store:
            store = local.open_store(self.storage_dir, self.redis_url)
            state = local.run(store, lambda s: local.load_task(s, task_id))
            info = state.info()
            snapshot = local.snapshot_of(state)
        else:
            with self.client() as client:
                info = client.info(task_id)
                snapshot = TaskSnapshot.from_info(info)
                if snapshot.result is None:
                    # The report so far: what the task's outputs hold (not in the TaskInfo).
                    for event in client.events(task_id, follow=False):
                        if event.type == "output":
                            snapshot.outputs.append(str(event.data.get("text", "")))
        if self.as_json:
            print_json(info.model_dump(mode="json"))  # as `GET tasks/{id}` answers
            return ExitCode.ok
        sys.stdout.write(markdown(snapshot))
        return ExitCode.ok


class FollowingCommand(ClientCommand):
    """A subcommand that can follow a task to its end, with tail's exit codes."""

    quiet = Bool(False, config=True, help="No progress on stderr.")
    as_json = Bool(False, config=True, help="Print the task as JSON, not its id or report.")
    flags: dict[str, Any] = {  # noqa: RUF012
        **ClientCommand.flags,
        "quiet": ({"FollowingCommand": {"quiet": True}}, "No progress on stderr."),
        "json": (
            {"FollowingCommand": {"as_json": True}},
            "Print the task's TaskInfo as JSON instead of its id (or, at the end, its report).",
        ),
    }

    def print_started(self, info: TaskInfo) -> int:
        """Without following: the task's id (or its TaskInfo as JSON) for a script to keep."""
        if self.as_json:
            print_json(info.model_dump(mode="json"))
        else:
            print(info.task_id)
        return ExitCode.ok

    def follow_to_end(self, client: ResearchClient, task_id: str) -> int:
        """Follow, then print the report (or JSON) on stdout; tail's exit status."""
        snapshot = follow(client, task_id, quiet=self.quiet)
        code = exit_code(snapshot)
        if self.as_json:
            print_json(client.info(task_id).model_dump(mode="json"))
        elif code == ExitCode.ok:
            sys.stdout.write(markdown(snapshot))
        if code != ExitCode.ok:
            hint = f"`jupyter deepresearch resume {task_id}` continues it"
            print(f"Task {task_id} {status_line(snapshot)}; {hint}", file=sys.stderr)
        return code


class TailCommand(FollowingCommand):
    """Follow a task with a progress bar until it ends, then print its report.

    Exit status: 0 completed, 1 failed, 2 cancelled, 3 error (server or task not found),
    4 paused until someone resumes it (or gives the key it misses). A dropped connection or a
    restarting server is reconnected to, continuing after the last event received.
    """

    name = "jupyter-deepresearch-tail"
    description = __doc__

    def run(self) -> int:
        task_id = checked_id(self.task_id_arg())
        with self.client() as client:
            return self.follow_to_end(client, task_id)


class SubmitCommand(FollowingCommand):
    """Start a research task (or attach to the same request's task) and print its id.

    The question is the one argument; options set the request's fields over a `--json` body.
    With --wait, follow it like `tail` (same exit status) and print its report.
    """

    name = "jupyter-deepresearch-submit"
    description = __doc__
    body = Unicode(
        "",
        config=True,
        help="A whole ResearchRequest as JSON, `@FILE` to read it from a file, or `-` for stdin.",
    )
    ai_provider = Unicode("", config=True, help="ai.provider (extractive, openai-compatible).")
    model = Unicode("", config=True, help="ai.model.")
    base_url = Unicode("", config=True, help="ai.base_url: the OpenAI-compatible endpoint.")
    search_provider = Unicode("", config=True, help="search.provider (local, searxng).")
    sources = List(Unicode(), config=True, help="search.sources: a folder (repeatable).")
    breadth = Int(None, allow_none=True, config=True, help="report.breadth.")
    depth = Int(None, allow_none=True, config=True, help="report.depth.")
    language = Unicode("", config=True, help="report.language.")
    wait = Bool(False, config=True, help="Follow the task to its end, as `tail` does.")

    aliases: dict[str, Any] = {  # noqa: RUF012
        **ClientCommand.aliases,
        "json": "SubmitCommand.body",
        "ai-provider": "SubmitCommand.ai_provider",
        "model": "SubmitCommand.model",
        "base-url": "SubmitCommand.base_url",
        "search-provider": "SubmitCommand.search_provider",
        "sources": "SubmitCommand.sources",
        "breadth": "SubmitCommand.breadth",
        "depth": "SubmitCommand.depth",
        "language": "SubmitCommand.language",
    }
    flags: dict[str, Any] = {  # noqa: RUF012
        **FollowingCommand.flags,
        "wait": ({"SubmitCommand": {"wait": True}}, "Follow the task to its end, as `tail`."),
    }
    # `--json` is the request body here; the TaskInfo as JSON is `--json-output`.
    flags.pop("json")
    flags["json-output"] = FollowingCommand.flags["json"]

    def request_body(self) -> dict[str, Any]:
        """The ResearchRequest: the `--json` body with the options' fields over it."""
        body = read_body(self.body)
        if len(self.extra_args) > 1:
            raise CommandError("give the question as one argument (quote it)")
        if self.extra_args:
            body["query"] = str(self.extra_args[0])
        if not str(body.get("query", "")).strip():
            raise CommandError('a question is required: jupyter deepresearch submit "question"')
        options: dict[str, dict[str, Any]] = {
            "ai": {"provider": self.ai_provider, "model": self.model, "base_url": self.base_url},
            "search": {"provider": self.search_provider, "sources": list(self.sources)},
            "report": {"breadth": self.breadth, "depth": self.depth, "language": self.language},
        }
        for section, fields in options.items():
            given = {k: v for k, v in fields.items() if v not in ("", None, [])}
            if given:
                current = body.get(section) or {}
                if not isinstance(current, dict):
                    raise CommandError(f"{section} in --json must be an object")
                body[section] = {**current, **given}
        return body

    def run(self) -> int:
        body = self.request_body()
        with self.client() as client:
            task = client.submit_request(body)
            report_submitted(task.info, "created" if task.created else "attached")
            if not self.wait:
                return self.print_started(task.info)
            return self.follow_to_end(client, task.task_id)


def read_body(text: str) -> dict[str, Any]:
    """The `--json` option: JSON text, `@FILE`, or `-` (stdin)."""
    if not text:
        return {}
    try:
        if text == "-":
            text = sys.stdin.read()
        elif text.startswith("@"):
            text = Path(text[1:]).expanduser().read_text(encoding="utf-8")
        body = json.loads(text)
    except OSError as exc:
        raise CommandError(f"--json: cannot read {text[1:]}: {exc.strerror}") from None
    except ValueError as exc:
        raise CommandError(f"--json is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise CommandError("--json must be a JSON object (a ResearchRequest)")
    return body


def report_submitted(info: TaskInfo, how: str) -> None:
    print(f"{how} task {info.task_id} ({info.status.value})", file=sys.stderr)


class ActionCommand(ClientCommand):
    """Pause, resume or cancel: prints the task's id and new status."""

    action = ""

    def run(self) -> int:
        task_id = checked_id(self.task_id_arg())
        with self.client() as client:
            info: TaskInfo = getattr(client, self.action)(task_id)
        print(f"{info.task_id} {info.status.value}")
        return ExitCode.ok


class PauseCommand(ActionCommand):
    """Pause a queued or running task; `resume` continues it from its last checkpoint."""

    name = "jupyter-deepresearch-pause"
    description = __doc__
    action = "pause"


class ResumeCommand(ActionCommand):
    """Resume a paused, failed or cancelled task from its last checkpoint."""

    name = "jupyter-deepresearch-resume"
    description = __doc__
    action = "resume"


class CancelCommand(ActionCommand):
    """Cancel a task that has not finished (`resume` can still continue it)."""

    name = "jupyter-deepresearch-cancel"
    description = __doc__
    action = "cancel"


class RestartCommand(FollowingCommand):
    """Run a task again from scratch under the same id, with its original request.

    Keys are not stored with a task: the server applies its configured keys again; a key the
    original request brought itself must come from the server's configuration or environment.
    """

    name = "jupyter-deepresearch-restart"
    description = __doc__
    wait = Bool(False, config=True, help="Follow the task to its end, as `tail` does.")
    flags: dict[str, Any] = {  # noqa: RUF012
        **FollowingCommand.flags,
        "wait": ({"RestartCommand": {"wait": True}}, "Follow the task to its end, as `tail`."),
    }

    def run(self) -> int:
        task_id = checked_id(self.task_id_arg())
        with self.client() as client:
            # The API has no restart route: the task's own request again, with `restart`.
            request = client.info(task_id).request
            task = client.submit_request({**request, "restart": True})
            if task.task_id != task_id:
                # The server's defaults changed how the request reads: a different task now.
                raise CommandError(
                    f"the request of {task_id} now makes task {task.task_id} (the server's "
                    "settings changed); that task was started instead"
                )
            report_submitted(task.info, "restarted")
            if not self.wait:
                return self.print_started(task.info)
            return self.follow_to_end(client, task.task_id)


class DeleteCommand(ClientCommand):
    """Stop a task if it runs and remove it from storage."""

    name = "jupyter-deepresearch-delete"
    description = __doc__

    def run(self) -> int:
        task_id = checked_id(self.task_id_arg())
        with self.client() as client:
            client.delete(task_id)
        print(f"deleted {task_id}", file=sys.stderr)
        return ExitCode.ok
