"""HTTP routes under `api/deepresearch/`: thin handlers that parse, authorize, call the manager."""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import uuid
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from pydantic import ValidationError
from tornado import web
from tornado.iostream import StreamClosedError

from .errors import BadRequest, DeepResearchError, PayloadTooLarge
from .models import ResearchRequest, Status, validation_message
from .sse import encode_comment, encode_event, encode_retry
from .store.base import TaskState
from .tasks import TaskManager
from .tasks.events import Idle
from .tasks.listing import ListQuery

AUTH_RESOURCE = "deepresearch"
API_PREFIX = "api/deepresearch"  # below the server's base URL; the OpenAPI document uses it too
# Any path segment: the id rule (`ids.py`) is checked by `TaskManager.get`, so an id outside it
# gets a 400 that says what an id is, not a bare 404 for an unmatched route.
TASK_ID = r"(?P<task_id>[^/]+)"
# Counts from the query or a header (`limit`, `after`, `Last-Event-ID`): ASCII digits only
# (`str.isdigit` admits "²", which `int` refuses, and `int` reads "٣", " 1", "1_0") and at most a
# 64-bit counter, which also keeps `int` away from its 4,300-digit limit.
MAX_COUNT = 2**63 - 1
# The text filter of `GET tasks` (`q`): a search term, not a question; any longer and a URL
# of multi-byte characters would outgrow what the HTTP server reads of a request line.
MAX_FILTER_CHARS = 1000
_COUNT = re.compile(r"[0-9]{1,19}")
RETRY_MILLISECONDS = 3000
FLUSH_BYTES = 64 * 1024


class DeepResearchHandler(APIHandler):
    """Common ground: JSON errors from domain exceptions, the manager, the caller's name."""

    auth_resource = AUTH_RESOURCE

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        await self.manager.ensure_started()

    @property
    def manager(self) -> TaskManager:
        manager: TaskManager = self.settings["deepresearch_manager"]
        return manager

    @property
    def user_name(self) -> str | None:
        """Who owns the tasks this request creates or sees."""
        provider = self.identity_provider
        if type(provider).__module__.startswith("jupyter_server."):
            # Jupyter's own providers authenticate the server's owner by token or password and
            # invent a random user name per session, so every such caller is that one account.
            return getpass.getuser()
        user = self.current_user
        return getattr(user, "username", None) if user else None

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("X-Request-ID", uuid.uuid4().hex)
        if self.settings.get("allow_origin") or self.settings.get("allow_origin_pat"):
            self.set_header(
                "Access-Control-Expose-Headers", "X-Task-ID, X-Request-ID, X-Model-Name"
            )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            # RFC 9110: a 405 lists the methods the resource does support.
            allowed = [m for m in ("GET", "POST", "DELETE") if m.lower() in vars(type(self))]
            self.set_header("Allow", ", ".join(allowed))
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, DeepResearchError):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"message": error.message}))
            return
        super().write_error(status_code, **kwargs)

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, DeepResearchError):
            status_code = error.status_code
            if status_code >= 500:
                self.log.warning("deepresearch: %s", error.message)
        super().send_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # Client mistakes are expected; only unexpected failures deserve a traceback.
        if isinstance(value, DeepResearchError) and value.status_code < 500:
            self.log.info("deepresearch: %s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)

    def read_request(self) -> ResearchRequest:
        """The body as a `ResearchRequest`, or a 400/413 that says what is wrong."""
        limit = self.settings["deepresearch_max_body_bytes"]
        body = self.request.body
        if len(body) > limit:
            raise PayloadTooLarge(f"Request body is {len(body)} bytes; the limit is {limit}.")
        try:
            decoded = json.loads(body or b"null")
            # JSON may escape unpaired surrogates (\ud800), which are not text: nothing could
            # store, log or send them, so they are refused here.
            json.dumps(decoded, ensure_ascii=False).encode()
        except RecursionError:
            # Python's json recurses once per level: a few KB of `[[[...` exhaust the stack.
            # No valid request nests more than three levels.
            raise BadRequest("Request body is nested too deeply to be a request.") from None
        except UnicodeEncodeError:
            raise BadRequest(
                "Request body contains invalid Unicode (an unpaired surrogate)."
            ) from None
        except (ValueError, UnicodeDecodeError) as error:
            raise BadRequest(f"Request body is not valid JSON: {error}") from None
        if not isinstance(decoded, dict):
            raise BadRequest("Request body must be a JSON object with at least a `query`.")
        try:
            return ResearchRequest.model_validate_json(body)
        except ValidationError as error:
            raise BadRequest(validation_message(error)) from None

    def write_task(self, state: TaskState, status_code: int = 200) -> None:
        self.set_status(status_code)
        self.set_header("Content-Type", "application/json")
        self.finish(state.info().model_dump_json())

    def set_task_headers(self, state: TaskState) -> None:
        self.set_header("X-Task-ID", state.task_id)
        ai = state.request.get("ai", {})
        self.set_header("X-Model-Name", _header_safe(ai.get("model") or ai.get("provider") or ""))
        self.set_header("Location", self.task_url(state.task_id))

    def task_url(self, task_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/{API_PREFIX}/tasks/{task_id}"


class EventStreamHandler(DeepResearchHandler):
    """Streams a task's events as Server-Sent Events until it ends or the client leaves."""

    _closed: asyncio.Event | None = None
    _wake: asyncio.Future[None] | None = None

    def on_connection_close(self) -> None:
        if self._closed is not None:
            self._closed.set()
            task_id = getattr(self, "_streaming_task_id", None)
            if task_id:
                self._wake = asyncio.ensure_future(self.manager.wake(task_id))

    def resume_point(self) -> int:
        """`Last-Event-ID` wins over `?after=` (a reconnecting browser keeps its old URL)."""
        raw = self.request.headers.get("Last-Event-ID")
        source = "Last-Event-ID header"
        if raw is None:
            raw = self.get_query_argument("after", None)
            source = "after"
        if raw is None or raw.strip() == "":
            return 0
        return parse_count(source, raw, minimum=0)

    async def stream(self, state: TaskState, after: int, *, follow: bool) -> None:
        self._closed = asyncio.Event()
        self._streaming_task_id = state.task_id
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        try:
            self.write(encode_retry(RETRY_MILLISECONDS))
            await self.flush()
            # Events are written as they come and flushed when the stream catches up (IDLE),
            # after the first one, or every FLUSH_BYTES: one socket write per burst, not per
            # event, with memory bounded while a long history replays.
            unflushed = 0
            sent_first = False
            async for item in self.manager.follow(
                state.task_id, after, live=follow, closed=self._closed
            ):
                if isinstance(item, Idle):
                    if unflushed:
                        await self.flush()
                        unflushed = 0
                    continue
                if item is None:
                    self.write(encode_comment("keepalive"))
                    await self.flush()
                    continue
                chunk = encode_event(item.id, item.type, item.data)
                self.write(chunk)
                unflushed += len(chunk)
                if not sent_first or unflushed >= FLUSH_BYTES:
                    await self.flush()
                    unflushed = 0
                    sent_first = True
        except StreamClosedError:
            return
        except DeepResearchError as error:
            # The task vanished (deleted) mid-stream: end the stream, not the server.
            self.log.info("deepresearch: stream of %s ended: %s", state.task_id, error.message)
        if not self._closed.is_set():
            self.finish()


class TasksHandler(DeepResearchHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        request = self.read_request()
        state, created = await self.manager.submit(request, self.user_name)
        self.set_task_headers(state)
        self.write_task(state, 201 if created else 200)

    @web.authenticated
    @authorized
    async def get(self) -> None:
        raw_status = self.get_query_argument("status", None)
        status = None
        if raw_status is not None:
            try:
                status = Status(raw_status)
            except ValueError:
                known = ", ".join(s.value for s in Status)
                raise BadRequest(f"status must be one of {known}; got {raw_status!r}.") from None
        raw_limit = self.get_query_argument("limit", None)
        limit = None if raw_limit is None else parse_count("limit", raw_limit, minimum=1)
        raw_offset = self.get_query_argument("offset", None)
        offset = 0 if raw_offset is None else parse_count("offset", raw_offset, minimum=0)
        include = self.get_query_argument("include", None)
        if include not in (None, "result"):
            raise BadRequest(f"include must be 'result' (or absent); got {include!r}.")
        text = self.get_query_argument("q", "")
        if len(text) > MAX_FILTER_CHARS:
            raise BadRequest(
                f"q is {len(text)} characters; at most {MAX_FILTER_CHARS} are allowed."
            )
        page = await self.manager.list_tasks(
            ListQuery(
                user=self.user_name,
                status=status,
                limit=limit,
                offset=offset,
                text=text or None,
                with_results=include == "result",
            )
        )
        self.finish({"tasks": page.tasks, "total": page.total})


class TaskHandler(DeepResearchHandler):
    @web.authenticated
    @authorized
    async def get(self, task_id: str) -> None:
        self.write_task(await self.manager.get(task_id, self.user_name))

    @web.authenticated
    @authorized
    async def delete(self, task_id: str) -> None:
        await self.manager.delete(task_id, self.user_name)
        self.set_status(204)
        self.finish()


class TaskActionHandler(DeepResearchHandler):
    @web.authenticated
    @authorized
    async def post(self, task_id: str, action: str) -> None:
        if action == "pause":
            state = await self.manager.pause(task_id, self.user_name)
        elif action == "resume":
            state = await self.manager.resume(task_id, self.user_name)
        else:
            state = await self.manager.cancel(task_id, self.user_name)
        self.write_task(state)


class TaskEventsHandler(EventStreamHandler):
    @web.authenticated
    @authorized
    async def get(self, task_id: str) -> None:
        state = await self.manager.get(task_id, self.user_name)
        after = self.resume_point()
        follow = self.get_query_argument("follow", "true").lower() not in ("false", "0", "no")
        if state.status.terminal and after >= state.last_event_id:
            # Nothing left to receive: 204 tells a browser EventSource to stop reconnecting.
            self.set_status(204)
            self.finish()
            return
        self.set_task_headers(state)
        await self.stream(state, after, follow=follow)


class ResearchHandler(EventStreamHandler):
    """The seed's one-shot form: create-or-attach, and the response is the event stream."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        # Everything the client sent is checked before the task is created.
        request = self.read_request()
        after = self.resume_point()
        state, created = await self.manager.submit(request, self.user_name)
        self.set_task_headers(state)
        self.set_status(201 if created else 200)
        await self.stream(state, after, follow=True)


class HealthHandler(DeepResearchHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(await self.manager.health(self.user_name))


class OpenAPIHandler(DeepResearchHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        from .openapi import openapi_document

        self.finish(openapi_document())


def parse_count(source: str, raw: str, *, minimum: int) -> int:
    """An integer from `minimum` to `MAX_COUNT` in ASCII digits, or a 400 naming `source`."""
    value = int(raw) if _COUNT.fullmatch(raw) else None
    if value is None or not minimum <= value <= MAX_COUNT:
        shown = repr(raw) if len(raw) <= 40 else f"{raw[:40]!r}... ({len(raw)} characters)"
        raise BadRequest(
            f"{source} must be an integer from {minimum} to {MAX_COUNT} in the digits 0-9; "
            f"got {shown}."
        )
    return value


def _header_safe(value: str) -> str:
    """Printable ASCII for a header; other characters as backslash escapes."""
    escaped = value.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(ch if " " <= ch <= "~" else f"\\x{ord(ch):02x}" for ch in escaped)


def route_table(prefix: str = API_PREFIX) -> list[tuple[str, type[DeepResearchHandler]]]:
    """Routes relative to the server's base URL."""
    return [
        (rf"/{prefix}/tasks", TasksHandler),
        (rf"/{prefix}/tasks/{TASK_ID}", TaskHandler),
        (rf"/{prefix}/tasks/{TASK_ID}/events", TaskEventsHandler),
        (rf"/{prefix}/tasks/{TASK_ID}/(?P<action>pause|resume|cancel)", TaskActionHandler),
        (rf"/{prefix}/research", ResearchHandler),
        (rf"/{prefix}/health", HealthHandler),
        (rf"/{prefix}/openapi.json", OpenAPIHandler),
    ]
