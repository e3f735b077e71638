"""The OpenAPI 3.1 document of `api/deepresearch/`, built from the models the handlers use."""

from __future__ import annotations

from functools import cache
from typing import Any

from .handlers import API_PREFIX, MAX_COUNT, MAX_FILTER_CHARS
from .ids import TASK_ID_PATTERN
from .lifecycle import Action, possible_from
from .models import ResearchRequest, Status, TaskInfo

PREFIX = f"/{API_PREFIX}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _count(minimum: int) -> dict[str, Any]:
    """A count in the query or a header, as `handlers.parse_count` reads it."""
    return {"type": "integer", "minimum": minimum, "maximum": MAX_COUNT}


_TASK_ID_PARAM = {
    "name": "task_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": TASK_ID_PATTERN},
}
_SSE = {
    "description": "Server-Sent Events: `status`, `progress`, `output` and `result` events "
    "with consecutive integer ids.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}
_TASK_HEADERS = {
    "X-Task-ID": {"schema": {"type": "string"}},
    "X-Request-ID": {"schema": {"type": "string"}},
    "X-Model-Name": {"schema": {"type": "string"}},
    "Location": {"schema": {"type": "string"}},
}
_COMMON_ERRORS = {"403": _error("Not authenticated or not authorized")}


def _task_action(summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [_TASK_ID_PARAM],
            "responses": {
                "200": _json(_ref("TaskInfo"), "The task after the change"),
                "400": _error("Malformed task id"),
                "404": _error("No such task"),
                "409": _error("The change is impossible from the task's status"),
                "429": _error("Resuming would exceed a per-user limit"),
                **_COMMON_ERRORS,
            },
        }
    }


def _submit(summary: str, ok: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": summary,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("ResearchRequest")}},
        },
        "responses": {
            "200": {**ok, "description": "Attached to, resumed or restarted an existing task"},
            "201": {**ok, "description": "Created a new task"},
            "400": _error("Invalid request; the message names the field"),
            **_COMMON_ERRORS,
            "403": _error("Not authenticated, or a provider URL outside allowed_base_urls"),
            "413": _error("Body larger than max_body_bytes"),
            "429": _error("A per-user or per-server limit is reached; the message names it"),
            "503": _error("Task store unavailable"),
        },
    }


def _schemas() -> dict[str, Any]:
    """The components' schemas: the models' own, and the providers this installation has."""
    schemas: dict[str, Any] = {}
    for model in (ResearchRequest, TaskInfo):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    # Providers are pluggable: the document lists those registered in this installation.
    from .research import known_providers

    known = known_providers()
    schemas["AISettings"]["properties"]["provider"]["enum"] = sorted(known["ai"])
    schemas["SearchSettings"]["properties"]["provider"]["enum"] = sorted(known["search"])
    schemas["Error"] = {
        "type": "object",
        "required": ["message"],
        "properties": {"message": {"type": "string"}},
    }
    schemas["TaskList"] = {
        "type": "object",
        "required": ["tasks", "total"],
        "properties": {
            # Items carry `result` only with `include=result`.
            "tasks": {"type": "array", "items": _ref("TaskInfo")},
            "total": {"type": "integer", "minimum": 0},
        },
    }
    return schemas


def _task_paths(task_ok: dict[str, Any]) -> dict[str, Any]:
    """Creating and listing tasks, one task, and its events."""
    return {
        f"{PREFIX}/tasks": {
            "post": _submit("Create or attach to the task for this request", task_ok),
            "get": {
                "summary": "List tasks, newest first (summaries: no result unless included)",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": [s.value for s in Status]},
                    },
                    {"name": "limit", "in": "query", "schema": _count(1)},
                    {"name": "offset", "in": "query", "schema": _count(0)},
                    {
                        "name": "q",
                        "in": "query",
                        "description": "Only tasks whose query contains this text (any case)",
                        "schema": {"type": "string", "maxLength": MAX_FILTER_CHARS},
                    },
                    {"name": "include", "in": "query", "schema": {"enum": ["result"]}},
                ],
                "responses": {
                    "200": _json(_ref("TaskList"), "Tasks"),
                    "400": _error("Bad filter"),
                    **_COMMON_ERRORS,
                },
            },
        },
        f"{PREFIX}/tasks/{{task_id}}": {
            "get": {
                "summary": "One task",
                "parameters": [_TASK_ID_PARAM],
                "responses": {
                    "200": _json(_ref("TaskInfo"), "Task"),
                    "400": _error("Malformed task id"),
                    "404": _error("No such task"),
                    **_COMMON_ERRORS,
                },
            },
            "delete": {
                "summary": "Stop the task if it runs and remove it from storage",
                "parameters": [_TASK_ID_PARAM],
                "responses": {
                    "204": {"description": "Deleted"},
                    "400": _error("Malformed task id"),
                    "404": _error("No such task"),
                    **_COMMON_ERRORS,
                },
            },
        },
        f"{PREFIX}/tasks/{{task_id}}/events": {
            "get": {
                "summary": "The task's events as Server-Sent Events",
                "parameters": [
                    _TASK_ID_PARAM,
                    {"name": "after", "in": "query", "schema": _count(0)},
                    {"name": "follow", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "Last-Event-ID", "in": "header", "schema": _count(0)},
                ],
                "responses": {
                    "200": _SSE,
                    "204": {"description": "Terminal task with nothing left to send"},
                    "400": _error("Malformed task id or resume point"),
                    "404": _error("No such task"),
                    **_COMMON_ERRORS,
                },
            }
        },
    }


def _other_paths() -> dict[str, Any]:
    """The actions on a task, research in one request, health and this document."""
    return {
        f"{PREFIX}/tasks/{{task_id}}/pause": _task_action(
            f"Pause a {possible_from(Action.pause)} task"
        ),
        f"{PREFIX}/tasks/{{task_id}}/resume": _task_action(
            f"Resume a {possible_from(Action.resume)} task from its last checkpoint"
        ),
        f"{PREFIX}/tasks/{{task_id}}/cancel": _task_action(
            f"Cancel a {possible_from(Action.cancel)} task"
        ),
        f"{PREFIX}/research": {
            "post": _submit(
                "Create or attach, and stream the task's events in the response",
                {**_SSE, "headers": _TASK_HEADERS},
            )
        },
        f"{PREFIX}/health": {
            "get": {
                "summary": "Store kind and task counts by status",
                "responses": {"200": _json({"type": "object"}, "Health"), **_COMMON_ERRORS},
            }
        },
        f"{PREFIX}/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3 document")},
            }
        },
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The whole document; cached since it depends only on code."""
    task_ok = {**_json(_ref("TaskInfo"), "Task"), "headers": _TASK_HEADERS}
    paths = {**_task_paths(task_ok), **_other_paths()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "jupyter-deepresearch", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "Authorization"}
            },
        },
        "security": [{"token": []}],
    }
