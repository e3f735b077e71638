"""`DeepResearchApp`: the Jupyter server extension holding configuration, routes and the manager."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import import_module
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from pydantic import SecretStr
from traitlets import (
    Bool,
    Dict,
    Enum,
    Float,
    Integer,
    List,
    TraitError,
    Type,
    Unicode,
    default,
    validate,
)

from . import redact
from .handlers import route_table
from .limits import Limits
from .models import clean_secret
from .replay import Replay
from .research.context import DEFAULT_MAX_SOURCE_FILE_BYTES, ResearchPipeline
from .store.base import StoreSettings, TaskStore
from .tasks import RequestPolicy, TakeoverPolicy, TaskManager

ACTIVITY_KEY = "deepresearch"


class DeepResearchApp(ExtensionApp):
    """Runs deep-research tasks in the background of the Jupyter server."""

    name = "jupyter_deepresearch.extension"
    load_other_extensions = True

    storage_dir = Unicode(
        "",
        config=True,
        help="Folder of the `files` store. Empty: $TASK_STORAGE_DIR, else "
        "{jupyter_data_dir}/deepresearch/tasks.",
    )
    cache_dir = Unicode(
        "",
        config=True,
        help="Folder for caches that outlive tasks (the local search index). Empty: "
        "{jupyter_data_dir}/deepresearch/cache.",
    )
    store = Enum(["files", "redis"], "files", config=True, help="Task store backend.")
    store_class = Type(
        None,
        klass="jupyter_deepresearch.extension.store.base.TaskStore",
        allow_none=True,
        config=True,
        help="A TaskStore subclass to use instead of `store` (a third backend is one module "
        "plus this setting); it is built with its `from_settings` classmethod.",
    )
    redis_url = Unicode(
        "redis://127.0.0.1:6379/0",
        config=True,
        help="Redis URL for the `redis` store; `?prefix=name:` sets the key prefix "
        "(default `deepresearch:`).",
    )
    max_concurrent_tasks = Integer(
        2, config=True, help="Tasks run at once by this server; the rest wait as `queued`."
    )
    max_task_age_hours = Float(
        config=True,
        help="Finished tasks older than this are deleted by a periodic sweep; 0 keeps them "
        "forever. Default: $MAX_TASK_AGE_HOURS, else 168.",
    )
    lease_seconds = Float(
        30.0,
        config=True,
        help="How long a runner's lease lasts without renewal before another server may take "
        "the task over.",
    )
    flush_interval = Float(
        1.0, config=True, help="Seconds within which a recorded event reaches the disk."
    )
    auto_resume = Bool(
        True,
        config=True,
        help="Resume tasks that were running, queued or paused by a shutdown when the server "
        "starts.",
    )
    fingerprint_scope = Enum(
        ["user", "shared"],
        "user",
        config=True,
        help="`user`: each user has their own tasks (the owner is part of the task id); "
        "`shared`: identical requests from different users share one task.",
    )
    server_user = Unicode(
        config=True,
        help="The user whose server this is: on a shared store it takes over only that user's "
        "tasks (another user's task never runs with this server's files). Default: "
        "$JUPYTERHUB_USER, which JupyterHub sets; empty: any user's tasks.",
    )
    max_unfinished_tasks_per_user = Integer(
        200,
        config=True,
        help="Queued, running or paused tasks one user may have at once; more get 429. "
        "0: no limit.",
    )
    max_queued_tasks = Integer(
        1000,
        config=True,
        help="Tasks this server keeps waiting to run; more get 429. 0: no limit.",
    )
    max_stored_tasks_per_user = Integer(
        0,
        config=True,
        help="Tasks one user may keep stored (finished ones included; expiry and DELETE free "
        "room); more get 429. 0: no limit. Counting lists the store on each new task.",
    )
    default_ai = Dict(
        config=True,
        help="Defaults for a request's `ai` section, e.g. {'provider': 'openai-compatible', "
        "'base_url': 'http://127.0.0.1:11434/v1', 'model': 'llama3.1'}. May hold `api_key` "
        "(or credentials in the base_url): it is sent only to this base_url, never to one a "
        "request names.",
    )
    default_search = Dict(
        config=True,
        help="Defaults for a request's `search` section, e.g. a SearXNG base_url. Its `api_key` "
        "is sent only to this base_url, never to one a request names.",
    )
    allowed_base_urls = List(
        Unicode(),
        config=True,
        help="Provider URLs a request may name in `ai.base_url` and `search.base_url`, as glob "
        "patterns (`*` matches any characters, `/` included), e.g. "
        "['https://llm.example.org/*', 'http://127.0.0.1:11434/v1']. A URL is matched without "
        "its user-info, with scheme and host in lower case and no trailing slash. Empty: any "
        "URL. The base_url of `default_ai` / `default_search` is always allowed. A request "
        "outside the list gets 403.",
    )
    max_body_bytes = Integer(
        1_048_576, config=True, help="Largest accepted request body; larger ones get 413."
    )
    max_source_file_bytes = Integer(
        DEFAULT_MAX_SOURCE_FILE_BYTES,
        min=1,
        config=True,
        help="Largest file of a source folder (`search.sources`) that the local search reads; "
        "larger files are skipped with a progress message naming them.",
    )
    pipeline = Unicode(
        "jupyter_deepresearch.extension.research:run_research",
        config=True,
        help="Import path 'module:callable' of the research pipeline each task runs.",
    )

    replay_dir = Unicode(
        "",
        config=True,
        help="A folder written by `jupyter deepresearch export`: a request whose recording it "
        "holds (same request, whoever asks; secrets never count) is answered from it, its "
        "recorded events streamed like a live run's, without calling any provider. Empty: none.",
    )
    replay_only = Bool(
        False,
        config=True,
        help="Run no research at all: a request that would start research (new, resumed or "
        "restarted) and has no recording in `replay_dir` gets 409 saying how to record it, and "
        "no provider is ever called (for CI runs of notebooks). Tasks are not resumed at start.",
    )

    manager: TaskManager | None = None

    @default("max_task_age_hours")
    def _default_max_age(self) -> float:
        raw = os.environ.get("MAX_TASK_AGE_HOURS", "").strip()
        if not raw:
            return 168.0
        try:
            return float(raw)
        except ValueError:
            self.log.warning("Ignoring MAX_TASK_AGE_HOURS=%r: not a number", raw)
            return 168.0

    @default("server_user")
    def _default_server_user(self) -> str:
        return os.environ.get("JUPYTERHUB_USER", "")

    @validate("max_concurrent_tasks")
    def _check_concurrency(self, proposal: Any) -> int:
        if proposal["value"] < 1:
            raise TraitError("max_concurrent_tasks must be at least 1")
        return int(proposal["value"])

    @validate("default_ai", "default_search")
    def _check_default_secrets(self, proposal: Any) -> dict[str, Any]:
        # A key read from a file keeps its newline; strip it here, and refuse (without showing
        # it) a key no HTTP header can carry, rather than failing every task that uses it.
        value = dict(proposal["value"])
        where = f"DeepResearchApp.{proposal['trait'].name}"
        key = value.get("api_key")
        if key is not None:
            if not isinstance(key, str):
                raise TraitError(f"{where}['api_key'] must be a string")
            try:
                cleaned = clean_secret(SecretStr(key))
            except ValueError as error:
                raise TraitError(f"{where}['api_key'] {error}") from None
            value["api_key"] = cleaned.get_secret_value() if cleaned else None
        url = value.get("base_url")
        if value.get("api_key") and isinstance(url, str) and redact.has_userinfo(url):
            raise TraitError(
                f"{where} has credentials both in 'base_url' (user:password@) and in 'api_key'; "
                "give one of them"
            )
        return value

    @validate(
        "lease_seconds",
        "flush_interval",
        "max_task_age_hours",
        "max_unfinished_tasks_per_user",
        "max_queued_tasks",
        "max_stored_tasks_per_user",
    )
    def _check_non_negative(self, proposal: Any) -> Any:
        if proposal["value"] < 0:
            raise TraitError(f"{proposal['trait'].name} must not be negative")
        return proposal["value"]

    def resolved_storage_dir(self) -> Path:
        raw = self.storage_dir or os.environ.get("TASK_STORAGE_DIR", "")
        if raw:
            return Path(raw).expanduser()
        return Path(jupyter_data_dir()) / "deepresearch" / "tasks"

    def resolved_cache_dir(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        return Path(jupyter_data_dir()) / "deepresearch" / "cache"

    def make_store(self, *, read_only: bool = False) -> TaskStore:
        """The store `store_class` (or else `store`) names, built from these settings."""
        store_class: type[TaskStore]
        if self.store_class is not None:
            store_class = self.store_class
        elif self.store == "redis":
            from .store.redis import RedisTaskStore  # needs the `redis` extra

            store_class = RedisTaskStore
        else:
            from .store.files import FileTaskStore

            store_class = FileTaskStore
        return store_class.from_settings(
            StoreSettings(
                storage_dir=self.resolved_storage_dir(),
                redis_url=self.redis_url,
                flush_interval=self.flush_interval,
                retention_seconds=self.max_task_age_hours * 3600,
                log=self.log,
                read_only=read_only,
            )
        )

    def load_pipeline(self) -> ResearchPipeline:
        module_name, _, attribute = self.pipeline.partition(":")
        if not module_name or not attribute:
            raise TraitError(f"pipeline must look like 'module:callable', got {self.pipeline!r}")
        pipeline: ResearchPipeline = getattr(import_module(module_name), attribute)
        return pipeline

    def make_replay(self) -> Replay | None:
        """The recordings `replay_dir` and `replay_only` ask for, or None when replay is off."""
        if not self.replay_dir and not self.replay_only:
            return None
        folder = Path(self.replay_dir).expanduser().resolve() if self.replay_dir else None
        if folder is not None and not folder.is_dir():
            self.log.warning("deepresearch: replay_dir %s is not a folder; nothing replays", folder)
        return Replay(folder, only=self.replay_only, log=self.log)

    def build_manager(
        self,
        root_dir: Path,
        *,
        on_activity: Callable[[], None] | None = None,
        worker: bool = False,
    ) -> TaskManager:
        """A task manager configured by these settings (the server's, or a headless worker's:
        any user's tasks, but none that reads users' source folders)."""
        from .research import validate_request

        replay = self.make_replay()
        # Log lines and tracebacks, ours and our libraries', are scrubbed of secrets too.
        redact.install_log_scrubbing()
        requests = RequestPolicy(
            default_ai=self.default_ai,
            default_search=self.default_search,
            allowed_base_urls=tuple(self.allowed_base_urls),
            fingerprint_scope=self.fingerprint_scope,
            validate=validate_request,
            limits=Limits(
                unfinished_per_user=self.max_unfinished_tasks_per_user,
                queued=self.max_queued_tasks,
                stored_per_user=self.max_stored_tasks_per_user,
            ),
            may_run=replay.check_may_run if replay is not None else None,
        )
        # Running tasks whose server is gone is the worker's whole job: it always resumes.
        takeover = TakeoverPolicy(
            # Under replay_only nothing would run them anyway (no recording, no provider).
            auto_resume=(worker or self.auto_resume) and not self.replay_only,
            runs_for=None if worker else (self.server_user or None),
            reads_sources=not worker,
        )
        pipeline = self.load_pipeline()
        return TaskManager(
            self.make_store(),
            replay.wrap(pipeline) if replay is not None else pipeline,
            root_dir=root_dir,
            cache_dir=self.resolved_cache_dir(),
            max_concurrent_tasks=self.max_concurrent_tasks,
            max_source_file_bytes=self.max_source_file_bytes,
            requests=requests,
            takeover=takeover,
            lease_seconds=self.lease_seconds,
            max_task_age_hours=self.max_task_age_hours,
            on_activity=on_activity,
            # A server reads its users' task summaries once after start, for the Research
            # panel's first listing; a worker lists nothing.
            warm_listing_for=None if worker else takeover.runs_for,
            warm_listing=not worker,
            log=self.log,
        )

    def initialize_settings(self) -> None:
        assert self.serverapp is not None
        root_dir = Path(self.serverapp.root_dir).expanduser().resolve()
        self.manager = self.build_manager(root_dir, on_activity=self._report_activity)
        self.settings.update(
            deepresearch_manager=self.manager,
            deepresearch_max_body_bytes=self.max_body_bytes,
        )

    def initialize_handlers(self) -> None:
        self.handlers.extend(route_table())

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        assert self.manager is not None
        await self.manager.ensure_started()
        _stop_cleanly_on_sigint(serverapp)
        self._export_connection_env(serverapp)
        self.log.info(
            "deepresearch: %s store at %s, up to %d concurrent tasks",
            self.store,
            self.manager.store.location,
            self.max_concurrent_tasks,
        )

    async def stop_extension(self) -> None:
        if self.manager is not None:
            await self.manager.stop()

    def _export_connection_env(self, serverapp: Any) -> None:
        # Kernels this server launches inherit these, so `research()` finds its own server.
        try:
            os.environ["JUPYTER_DEEPRESEARCH_URL"] = serverapp.connection_url
            token = getattr(serverapp.identity_provider, "token", "") or ""
        except (AttributeError, TypeError):
            return
        os.environ["JUPYTER_DEEPRESEARCH_TOKEN"] = token

    def _report_activity(self) -> None:
        # An idle culler reads `last_activity_times`; research in flight counts as activity.
        web_app = getattr(self.serverapp, "web_app", None)
        if web_app is not None:
            times = web_app.settings.setdefault("last_activity_times", {})
            times[ACTIVITY_KEY] = datetime.now(timezone.utc)


def _stop_cleanly_on_sigint(serverapp: Any) -> None:
    """Make SIGINT stop the server the way SIGTERM does when nobody else handles it.

    Without a terminal, jupyter_server leaves SIGINT to Python: the KeyboardInterrupt ends the
    event loop without stopping extensions, so running tasks kept their leases and stayed
    `running` until the leases lapsed. JupyterHub's spawners send SIGINT first.
    """
    stop = getattr(serverapp, "_signal_stop", None)
    if stop is not None and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, stop)
