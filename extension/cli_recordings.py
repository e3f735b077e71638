"""`jupyter deepresearch export` and `import`: completed tasks to recordings and back.

Both read the server's own configuration (`jupyter_server_config.*`, section `DeepResearchApp`)
to find the store, like the worker; the format of a recordings folder is in `recordings.py`.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from pathlib import Path
from typing import Any

from jupyter_core.application import JupyterApp
from traitlets import Bool, Unicode

from . import redact
from .app import DeepResearchApp
from .errors import DeepResearchError
from .fingerprint import task_id_for
from .ids import TASK_ID_RULE, is_task_id
from .lifecycle import EventType, Status
from .recordings import (
    BadRecording,
    Recording,
    read_recording,
    recording_folders,
    recording_of,
    same_recording,
    write_recording,
)
from .store.base import LeaseRequest, TaskState, TaskStore
from .store.owners import new_owner_id

STORE_ALIASES = {
    "storage-dir": "DeepResearchApp.storage_dir",
    "store": "DeepResearchApp.store",
    "redis-url": "DeepResearchApp.redis_url",
}


class _StoreCommand(JupyterApp):
    """A command that opens the store the server's configuration describes."""

    # The server's configuration file, so one `DeepResearchApp` section configures all.
    config_file_name = Unicode("jupyter_server_config", config=True)
    classes = [DeepResearchApp]  # noqa: RUF012 (traitlets reads these class attributes)
    failed = False

    def settings(self) -> DeepResearchApp:
        settings = DeepResearchApp(config=self.config, log=self.log)
        # Configured secrets are remembered, so that no text written out can carry them.
        for section in (settings.default_ai, settings.default_search):
            redact.remember(section.get("api_key"))
            redact.remember_url(section.get("base_url"))
        return settings

    def say(self, text: str) -> None:
        print(redact.scrub(text))

    def problem(self, text: str) -> None:
        self.failed = True
        print(redact.scrub(text), file=sys.stderr)

    def run(self, work: Any) -> None:
        try:
            asyncio.run(work)
        except DeepResearchError as error:
            self.problem(f"error: {error.message}")
        except OSError as error:  # the folder written or read: not there, not writable, full
            self.problem(f"error: {error}")
        if self.failed:
            self.exit(1)


class ExportApp(_StoreCommand):
    """Writes completed tasks as recordings (plain files, no secrets) into a folder."""

    name = "jupyter-deepresearch-export"
    description = __doc__
    to = Unicode("", config=True, help="Folder to write the recordings into (created if needed).")
    owner = Unicode("", config=True, help="Export only this user's tasks.")
    query = Unicode(
        "", config=True, help="Export only tasks whose query contains this text (any case)."
    )
    overwrite = Bool(False, config=True, help="Replace recordings that differ from the task's.")
    aliases = {  # noqa: RUF012
        **STORE_ALIASES,
        "to": "ExportApp.to",
        "owner": "ExportApp.owner",
        "query": "ExportApp.query",
    }
    flags = {  # noqa: RUF012
        "overwrite": ({"ExportApp": {"overwrite": True}}, "Replace differing recordings."),
    }
    examples = "jupyter deepresearch export --to notebooks/recordings [TASK_ID ...]"

    def start(self) -> None:
        if not self.to:
            self.problem("error: say where to write the recordings: --to DIR")
            self.exit(2)
        # Read-only: exporting from a live store, a backup or a read-only volume writes nothing.
        store = self.settings().make_store(read_only=True)
        self.run(self._export(store, Path(self.to).expanduser()))

    async def _export(self, store: TaskStore, folder: Path) -> None:
        await store.open()
        try:
            written: set[str] = set()
            for task_id in await self._chosen(store):
                state = await store.load(task_id)
                if state is None:
                    self.problem(f"skipped {task_id}: no such task")
                elif state.status is not Status.completed:
                    self.problem(f"skipped {task_id}: it is {state.status.value}, not completed")
                else:
                    events = [event async for event in store.events(task_id)]
                    self._write(folder, recording_of(state, events), task_id, written)
        finally:
            await store.close()

    async def _chosen(self, store: TaskStore) -> list[str]:
        named = list(self.extra_args)
        for task_id in named:
            if not is_task_id(task_id):
                raise BadTaskId(f"{task_id!r} is not a task id ({TASK_ID_RULE})")
        if named:
            return named
        rows = sorted(await store.summaries(), key=lambda row: (row.created_at, row.task_id))
        chosen = []
        for row in rows:
            if row.status is not Status.completed or (self.owner and row.owner != self.owner):
                continue
            if self.query:
                state = await store.peek(row.task_id)
                if (
                    state is None
                    or self.query.lower() not in str(state.request.get("query", "")).lower()
                ):
                    continue
            chosen.append(row.task_id)
        if not chosen:
            self.say("no completed task matches; nothing exported")
        return chosen

    def _write(self, folder: Path, recording: Recording, task_id: str, written: set[str]) -> None:
        name = f"{recording.key} (task {task_id}: {recording.request.get('query', '')!r:.60})"
        if recording.key in written:
            self.say(f"skipped {name}: the same request was exported from another task")
            return
        written.add(recording.key)
        target = folder / recording.key
        if target.exists() and not self.overwrite:
            try:
                unchanged = same_recording(read_recording(target), recording)
            except BadRecording:
                unchanged = False
            if unchanged:
                self.say(f"unchanged {name}")
            else:
                self.problem(f"skipped {name}: {target} differs; --overwrite replaces it")
            return
        write_recording(folder, recording)
        self.say(f"exported {name}")


class BadTaskId(DeepResearchError):
    """A task id on the command line that no task can have."""


class ImportApp(_StoreCommand):
    """Loads recordings from a folder into the store as completed tasks (existing ones kept)."""

    name = "jupyter-deepresearch-import"
    description = __doc__
    owner = Unicode(
        "",
        config=True,
        help="Owner of the imported tasks. Default: the current user (who owns tasks created "
        "through the server's own login); with fingerprint_scope='shared', none.",
    )
    aliases = {**STORE_ALIASES, "owner": "ImportApp.owner"}  # noqa: RUF012
    flags: dict[str, Any] = {}  # noqa: RUF012
    examples = "jupyter deepresearch import notebooks/recordings"

    def start(self) -> None:
        if len(self.extra_args) != 1:
            self.problem("error: name one recordings folder: jupyter deepresearch import DIR")
            self.exit(2)
        folder = Path(self.extra_args[0]).expanduser()
        if not folder.is_dir():
            self.problem(f"error: {folder} is not a folder")
            self.exit(2)
        settings = self.settings()
        owner = self.owner or (getpass.getuser() if settings.fingerprint_scope == "user" else "")
        scoped = settings.fingerprint_scope == "user"
        self.run(self._import(settings.make_store(), folder, owner or None, scoped))

    async def _import(
        self, store: TaskStore, folder: Path, owner: str | None, scoped: bool
    ) -> None:
        await store.open()
        try:
            for name, path in recording_folders(folder):
                try:
                    recording = read_recording(path)
                except BadRecording as error:
                    self.problem(f"skipped {name}: {error.message}")
                    continue
                task_id = task_id_for(recording.research_request(), owner if scoped else None)
                if await store_recording(store, task_id, recording, owner):
                    self.say(f"imported {name} as task {task_id}")
                else:
                    self.say(f"skipped {name}: task {task_id} is already in the store (kept)")
        finally:
            await store.close()


async def store_recording(
    store: TaskStore, task_id: str, recording: Recording, owner: str | None
) -> bool:
    """Store a recording as a completed task `task_id`; False (nothing written) if it exists."""
    state = TaskState(task_id=task_id, request=recording.request, owner=owner)
    writer = LeaseRequest(new_owner_id(), 30.0)
    if not await store.create(state, lease=writer):
        return False
    try:
        *body, last = recording.events
        for event in body:
            await store.append(state, event.type, event.data)
        # As a live run: the result is durable before `completed` can be seen.
        await store.flush()
        await store.append(state, last.type, last.data)
        state.attempts = sum(
            1
            for event in recording.events
            if event.type == EventType.status and event.data.get("status") == Status.running
        )
        await store.save(state, durable=True)
    except BaseException:
        # Half a task would look queued or running to a server, which would run it: none.
        store.detach(task_id)
        await store.delete(task_id)
        raise
    await store.release_lease(task_id, writer.owner)
    store.detach(task_id)
    return True
