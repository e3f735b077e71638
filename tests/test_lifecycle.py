"""The lifecycle rules both sides share: the allowed moves, their 409 messages, the event fold."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from dr_testing.waiting import wait_status
from jupyter_deepresearch.extension import models
from jupyter_deepresearch.extension.lifecycle import (
    Action,
    EventType,
    PauseReason,
    Status,
    allowed,
    conflict_message,
    fold,
    possible_from,
)
from jupyter_deepresearch.extension.store.base import Event, TaskState
from jupyter_deepresearch.kernel_helpers._state import RECENT_MESSAGES, TaskEvent, TaskSnapshot
from jupyter_deepresearch.kernel_helpers._widget import ResearchWidget

TASK_ID = "0123456789abcdef0123456789abcdef"

# Written out rather than computed, so a change to the rules has to change this table too.
POSSIBLE = {
    "pause": {"queued", "running"},
    "resume": {"paused", "failed", "cancelled"},
    "cancel": {"queued", "running", "paused"},
    "restart": {"queued", "running", "paused", "completed", "failed", "cancelled"},
    "delete": {"queued", "running", "paused", "completed", "failed", "cancelled"},
}


@pytest.mark.parametrize("status", [s.value for s in Status])
@pytest.mark.parametrize("action", list(POSSIBLE))
def test_allowed_moves_table(action: str, status: str) -> None:
    expected = status in POSSIBLE[action]
    assert allowed(action, status) is expected
    assert allowed(Action(action), Status(status)) is expected


def test_an_unknown_status_allows_nothing_and_an_unknown_action_is_refused() -> None:
    # A kernel talking to a newer server may see a status it does not know.
    assert not any(allowed(action, "archived") for action in Action)
    with pytest.raises(ValueError):
        allowed("archive", Status.completed)


def test_values_stay_the_strings_stored_and_sent() -> None:
    assert [t.value for t in EventType] == ["status", "progress", "output", "result"]
    assert {r.value for r in PauseReason} == {
        "user",
        "shutdown",
        "storage",
        "credentials",
        "owner",
    }
    assert json.dumps([EventType.output, PauseReason.owner]) == '["output", "owner"]'
    assert f"event: {EventType.status}" == "event: status"
    assert EventType.result == "result" and PauseReason.storage == "storage"
    assert models.Status is Status  # still importable from where it always was


def test_conflict_messages() -> None:
    assert conflict_message(Action.pause, TASK_ID, Status.completed) == (
        f"Task {TASK_ID} is completed; only queued or running tasks can be paused."
    )
    assert conflict_message("resume", TASK_ID, "running") == (
        f"Task {TASK_ID} is running; only paused, failed or cancelled tasks can be resumed."
    )
    assert conflict_message(Action.cancel, TASK_ID, Status.cancelled) == (
        f"Task {TASK_ID} is already cancelled."
    )
    assert possible_from(Action.pause) == "queued or running"
    assert possible_from(Action.resume) == "paused, failed or cancelled"
    assert possible_from(Action.cancel) == "queued, running or paused"


async def test_server_409_messages_are_the_lifecycle_messages(api: Any) -> None:
    created = await api("POST", "tasks", body={"query": "lifecycle conflicts units=1"})
    task_id = json.loads(created.body)["task_id"]
    await wait_status(api, task_id, "completed")
    for action in (Action.pause, Action.cancel, Action.resume):
        response = await api("POST", "tasks", task_id, action.value)
        assert response.code == 409
        assert json.loads(response.body)["message"] == conflict_message(
            action, task_id, Status.completed
        )


class _Presses:
    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def cancel(self) -> None: ...


@pytest.mark.parametrize("status", [s.value for s in Status])
def test_widget_buttons_follow_the_allowed_moves(status: str) -> None:
    widget = ResearchWidget(TaskSnapshot(TASK_ID, status=status), actions=_Presses())
    try:
        enabled = (
            not widget.pause_button.disabled,
            not widget.resume_button.disabled,
            not widget.cancel_button.disabled,
        )
        assert enabled == tuple(status in POSSIBLE[a] for a in ("pause", "resume", "cancel"))
    finally:
        widget.close()


# -- one fold, two kinds of state ---------------------------------------------------------

Steps = list[tuple[str, dict[str, Any]]]

SEQUENCES: dict[str, Steps] = {
    "completed": [
        ("status", {"status": "running"}),
        ("progress", {"step": "plan", "percentage": 5, "message": "Planning"}),
        ("progress", {"step": "search", "percentage": 40, "message": "Searching"}),
        ("output", {"text": "# Report\n"}),
        ("progress", {"step": "search", "percentage": 30}),  # percentages never go back
        ("output", {"text": "Body."}),
        (
            "result",
            {"report": "# Report\nBody.", "sources": [{"id": "1", "title": "t", "url": "u"}]},
        ),
        ("status", {"status": "completed"}),
    ],
    "paused for credentials, then resumed": [
        ("status", {"status": "running"}),
        ("progress", {"step": "plan", "percentage": 10, "message": "Planning"}),
        (
            "status",
            {"status": "paused", "reason": "credentials", "error": "Needs ai.api_key"},
        ),
        ("status", {"status": "queued"}),
        ("status", {"status": "running"}),
    ],
    "paused by the user": [
        ("status", {"status": "running"}),
        ("status", {"status": "paused"}),
    ],
    "paused for its owner": [
        ("status", {"status": "paused", "reason": "owner", "error": "Waiting for alice"}),
    ],
    "failed": [
        ("status", {"status": "running"}),
        ("progress", {"step": "search", "percentage": 20, "message": "Searching"}),
        ("status", {"status": "failed", "error": "The model refused"}),
    ],
    "cancelled": [
        ("status", {"status": "running"}),
        ("output", {"text": "part"}),
        ("status", {"status": "cancelled"}),
    ],
    "many messages": [
        ("progress", {"step": "search", "percentage": n, "message": f"message {n}"})
        for n in range(60)
    ],
}


def _both(steps: Steps) -> tuple[TaskState, TaskSnapshot]:
    server = TaskState(task_id=TASK_ID, request={"query": "q"})
    kernel = TaskSnapshot(TASK_ID, query="q")
    for n, (type, data) in enumerate(steps, start=1):
        server.apply(Event(n, type, data))
        kernel.apply(TaskEvent(n, type, data))
    return server, kernel


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_the_same_events_give_the_same_state_on_server_and_kernel(name: str) -> None:
    server, kernel = _both(SEQUENCES[name])
    assert server.status.value == kernel.status
    assert (server.step, server.percentage, server.message) == (
        kernel.step,
        kernel.percentage,
        kernel.message,
    )
    assert (server.result, server.error, server.outputs) == (
        kernel.result,
        kernel.error,
        kernel.outputs,
    )
    assert server.paused_by == kernel.reason == kernel.paused_by
    assert kernel.messages == server.messages[-RECENT_MESSAGES:]
    assert server.last_event_id == kernel.last_event_id == len(SEQUENCES[name])


def test_the_fold_results_people_rely_on() -> None:
    server, _ = _both(SEQUENCES["completed"])
    assert (server.status, server.step, server.percentage) == (Status.completed, "search", 40)
    assert server.outputs == ["# Report\n", "Body."] and server.finished_at is not None
    paused, _ = _both(SEQUENCES["paused for credentials, then resumed"][:3])
    assert paused.paused_by == "credentials" and paused.message == "Needs ai.api_key"
    assert paused.error is None  # only a failure sets `error`
    resumed, _ = _both(SEQUENCES["paused for credentials, then resumed"])
    assert resumed.paused_by is None and resumed.finished_at is None
    user, _ = _both(SEQUENCES["paused by the user"])
    assert user.paused_by == PauseReason.user
    failed, _ = _both(SEQUENCES["failed"])
    assert failed.error == "The model refused" and failed.message == "Searching"
    many, kernel = _both(SEQUENCES["many messages"])
    assert len(many.messages) == 50 and len(kernel.messages) == RECENT_MESSAGES


def test_replayed_history_adds_messages_and_outputs_but_moves_nothing_back() -> None:
    snapshot = TaskSnapshot(TASK_ID, status="running", step="write", percentage=80)
    snapshot.base_event_id = 10
    snapshot.apply(TaskEvent(3, "status", {"status": "queued"}))
    snapshot.apply(TaskEvent(4, "progress", {"step": "plan", "percentage": 5, "message": "old"}))
    snapshot.apply(TaskEvent(5, "output", {"text": "earlier text"}))
    snapshot.apply(TaskEvent(6, "result", {"report": "stale"}))
    assert (snapshot.status, snapshot.step, snapshot.percentage) == ("running", "write", 80)
    assert snapshot.messages == ["old"] and snapshot.message == ""
    assert snapshot.outputs == ["earlier text"] and snapshot.result is None


@pytest.mark.parametrize(
    ("kind", "data", "error"),
    [
        ("status", {}, KeyError),
        ("status", {"status": "archived"}, ValueError),
        ("output", {}, KeyError),
        ("result", {"sources": []}, KeyError),
    ],
)
def test_the_server_refuses_a_damaged_event_whole_and_a_kernel_keeps_going(
    kind: str, data: dict[str, Any], error: type[Exception]
) -> None:
    server = TaskState(task_id=TASK_ID, request={}, status=Status.running, outputs=["a"])
    with pytest.raises(error):
        server.apply(Event(1, kind, data))
    assert (server.status, server.outputs, server.result) == (Status.running, ["a"], None)
    # The kernel shows what it can rather than stop its event thread.
    kernel = TaskSnapshot(TASK_ID, status="running")
    kernel.apply(TaskEvent(1, kind, data))
    assert kernel.last_event_id == 1


def test_the_fold_works_on_any_state_with_the_shared_fields() -> None:
    class Plain:
        def __init__(self) -> None:
            self.status = "queued"
            self.step, self.percentage, self.message = "", 0, ""
            self.messages: list[str] = []
            self.outputs: list[str] = []
            self.result: dict[str, Any] | None = None
            self.error: str | None = None
            self.paused_by: str | None = None

    state = Plain()
    for type, data in SEQUENCES["paused for credentials, then resumed"][:3]:
        fold(state, type, data, status_of=str, keep_messages=2)
    assert (state.status, state.paused_by, state.message) == (
        "paused",
        "credentials",
        "Needs ai.api_key",
    )


def test_the_lifecycle_module_loads_no_server_code() -> None:
    code = (
        "import sys, jupyter_deepresearch.extension.lifecycle; "
        "print([m for m in ('tornado', 'jupyter_server', 'pydantic') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
