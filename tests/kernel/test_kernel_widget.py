"""The widget's trait values as events arrive, its buttons, and replay on re-display."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import pytest
from kernel_fakes import END, TASK_ID, FakeServer, sse, task_info, task_routes

from jupyter_deepresearch.extension.models import ResearchResult, Status, TaskInfo
from jupyter_deepresearch.kernel_helpers import ConflictError, ResearchClient, TaskEvent
from jupyter_deepresearch.kernel_helpers._state import TaskSnapshot
from jupyter_deepresearch.kernel_helpers._widget import ResearchWidget


class Actions:
    """Records button presses; can be told to fail like a server's 409."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: Exception | None = None

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.fail is not None:
            raise self.fail

    def pause(self) -> None:
        self._call("pause")

    def resume(self) -> None:
        self._call("resume")

    def cancel(self) -> None:
        self._call("cancel")


def ev(event_id: int, type: str, **data: Any) -> TaskEvent:
    return TaskEvent(event_id, type, data)


@pytest.fixture
def actions() -> Actions:
    return Actions()


@pytest.fixture
def widget(actions: Actions) -> ResearchWidget:
    snapshot = TaskSnapshot(TASK_ID, query="How does <asyncio> cancel?")
    w = ResearchWidget(snapshot, actions=actions)
    w.report_interval = 0
    return w


def buttons(w: ResearchWidget) -> tuple[bool, bool, bool]:
    """(pause, resume, cancel) enabled."""
    return (not w.pause_button.disabled, not w.resume_button.disabled, not w.cancel_button.disabled)


def test_initial_state_shows_query_id_and_queued(widget: ResearchWidget) -> None:
    assert "How does &lt;asyncio&gt; cancel?" in widget.title.value
    assert TASK_ID in widget.title.value
    assert ">queued<" in widget.badge.value
    assert widget.progress.value == 0
    assert widget.report_markdown == ""
    assert buttons(widget) == (True, False, True)


def test_progress_step_messages_and_report_follow_the_events(widget: ResearchWidget) -> None:
    widget.on_event(ev(1, "status", status="running"))
    widget.on_event(ev(2, "progress", step="plan", percentage=10, message="Planning"))
    assert ">running<" in widget.badge.value
    assert (widget.progress.value, widget.progress.description) == (10, "10%")
    assert widget.step.value == "<i>plan</i>"
    assert widget.messages.value == "<ul><li>Planning</li></ul>"

    widget.on_event(ev(3, "progress", step="search", percentage=5, message="<b>x</b>"))
    assert widget.progress.value == 10  # never backwards
    assert "<li>&lt;b&gt;x&lt;/b&gt;</li>" in widget.messages.value

    widget.on_event(ev(4, "output", text="# Report\n\n"))
    assert widget.report_markdown == "# Report\n\n"
    widget.on_event(ev(5, "output", text="Growing [1]."))
    assert widget.report_markdown == "# Report\n\nGrowing [1]."
    assert widget.report.outputs[0]["data"]["text/markdown"] == "# Report\n\nGrowing [1]."

    sources = [
        {"id": "1", "title": "Tasks & <cancel>", "url": "https://docs.python.org/3/x?a=1&b=2"},
        {"id": "2", "title": "local", "url": "docs/notes.md"},
    ]
    widget.on_event(ev(6, "result", report="# Final", sources=sources))
    widget.on_event(ev(7, "progress", step="report", percentage=100))
    widget.on_event(ev(8, "status", status="completed"))
    assert widget.report_markdown == "# Final"
    assert (
        '<a href="https://docs.python.org/3/x?a=1&amp;b=2" target="_blank" rel="noopener">'
        "Tasks &amp; &lt;cancel&gt;</a>" in widget.sources.value
    )
    assert "<li>local <code>docs/notes.md</code></li>" in widget.sources.value
    assert "<summary><b>Sources</b> (2)</summary>" in widget.sources.value
    assert ">completed<" in widget.badge.value
    assert (widget.progress.value, widget.progress.bar_style) == (100, "success")
    assert buttons(widget) == (False, False, False)


def test_the_report_is_throttled_while_it_streams_and_flushed_by_other_events(
    widget: ResearchWidget,
) -> None:
    widget.report_interval = 60
    widget.on_event(ev(1, "output", text="a"))
    widget.on_event(ev(2, "output", text="b"))
    assert widget.report_markdown == "a"
    widget.on_event(ev(3, "progress", step="report", percentage=90))
    assert widget.report_markdown == "ab"


def test_buttons_follow_the_status(widget: ResearchWidget) -> None:
    expected = {
        "running": (True, False, True),
        "paused": (False, True, True),
        "failed": (False, True, False),
        "cancelled": (False, True, False),
        "queued": (True, False, True),
        "completed": (False, False, False),
    }
    for n, (status, enabled) in enumerate(expected.items(), start=1):
        widget.on_event(ev(n, "status", status=status))
        assert buttons(widget) == enabled, status


def test_buttons_call_the_task_and_show_its_errors(
    widget: ResearchWidget, actions: Actions
) -> None:
    widget.on_event(ev(1, "status", status="running"))
    widget.pause_button.click()
    widget.cancel_button.click()
    widget.on_event(ev(2, "status", status="paused"))
    widget.resume_button.click()
    assert actions.calls == ["pause", "cancel", "resume"]
    assert widget.notice.value == ""
    actions.fail = ConflictError("Cannot resume a task that is completed.", 409)
    widget.resume_button.click()
    assert "Resume failed: Cannot resume a task that is completed." in widget.notice.value


def test_failure_and_credential_pauses_are_shown(widget: ResearchWidget) -> None:
    widget.on_event(ev(1, "progress", step="plan", percentage=5, message="Planning"))
    widget.on_event(ev(2, "status", status="paused", reason="user"))
    assert widget.notice.value == ""  # a user's own pause needs no explanation
    widget.on_event(ev(3, "status", status="paused", reason="credentials", error="Needs api_key"))
    assert "Paused: Needs api_key" in widget.notice.value
    assert widget.progress.bar_style == "warning"
    widget.on_event(ev(4, "status", status="failed", error="Search <engine> down"))
    assert "Failed: Search &lt;engine&gt; down" in widget.notice.value
    assert widget.progress.bar_style == "danger"
    widget.on_event(ev(5, "status", status="running"))  # resumed
    assert widget.notice.value == ""


def test_a_fresher_task_info_moves_the_widget(widget: ResearchWidget) -> None:
    now = datetime.now(timezone.utc)
    info = TaskInfo(
        task_id=TASK_ID,
        status=Status.paused,
        percentage=40,
        step="search",
        created_at=now,
        updated_at=now,
        request={"query": "q"},
        last_event_id=5,
        attempts=2,
    )
    widget.on_info(info)
    assert ">paused<" in widget.badge.value
    assert widget.progress.value == 40
    assert widget.state.attempts == 2


def test_replayed_history_adds_messages_without_moving_status_back(actions: Actions) -> None:
    now = datetime.now(timezone.utc)
    info = TaskInfo(
        task_id=TASK_ID,
        status=Status.completed,
        percentage=100,
        step="report",
        created_at=now,
        updated_at=now,
        request={"query": "q"},
        last_event_id=3,
        result=ResearchResult(report="Final", sources=[]),
    )
    widget = ResearchWidget(TaskSnapshot.from_info(info), actions=actions)
    widget.on_event(ev(1, "status", status="running"))
    widget.on_event(ev(2, "progress", step="plan", percentage=10, message="Planning"))
    widget.on_event(ev(3, "status", status="completed"))
    assert ">completed<" in widget.badge.value
    assert widget.progress.value == 100
    assert widget.messages.value == "<ul><li>Planning</li></ul>"
    assert widget.report_markdown == "Final"


def test_redisplaying_a_task_replays_its_history_then_goes_live(
    fake: FakeServer, client: ResearchClient, widget_mode: None
) -> None:
    run = [
        sse(1, "status", {"status": "running"}),
        sse(2, "progress", {"step": "plan", "percentage": 10, "message": "Planning"}),
        sse(3, "output", {"text": "Part one. "}),
    ]
    import threading

    release = threading.Event()
    task_routes(fake, task_info())
    fake.sse_scripts = [
        [*run, ("wait", release), sse(4, "output", {"text": "Part two."}), END],
        [sse(5, "status", {"status": "completed"}), END],
    ]
    task = client.research("q", display=False)
    deadline = time.monotonic() + 5
    while task.last_event_id < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    first = task.widget()
    second = task.widget()  # a re-display: a new view with the same history
    for w in (first, second):
        w.report_interval = 0
        assert w.messages.value == "<ul><li>Planning</li></ul>"
        assert w.report_markdown == "Part one. "
        assert w.progress.value == 10
    release.set()
    deadline = time.monotonic() + 5
    while first.state.status != "completed" and time.monotonic() < deadline:
        time.sleep(0.01)
    for w in (first, second):
        assert w.state.status == "completed"
        assert w.report_markdown == "Part one. Part two."


def test_closing_the_last_widget_stops_the_stream(
    fake: FakeServer, client: ResearchClient, widget_mode: None
) -> None:
    import threading

    release = threading.Event()
    task_routes(fake, task_info())
    fake.sse_scripts = [[sse(1, "status", {"status": "running"}), ("wait", release), END]]
    task = client.research("q", display=False)
    widget = task.widget()
    deadline = time.monotonic() + 5
    while widget.state.status != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    widget.close()
    deadline = time.monotonic() + 2
    while task.following and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    assert not task.following


def test_the_buttons_of_a_tasks_widget_call_the_server(
    fake: FakeServer, client: ResearchClient, widget_mode: None
) -> None:
    task_routes(fake, task_info(status="running", last_event_id=1))
    fake.sse_scripts = [[sse(2, "progress", {"step": "plan", "percentage": 5}), ("sleep", 5)]]
    task = client.research("q", display=False)
    widget = task.widget()
    deadline = time.monotonic() + 5
    while widget.state.last_event_id < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    widget.pause_button.click()
    assert ">paused<" in widget.badge.value  # from the TaskInfo the server answered with
    assert buttons(widget) == (False, True, True)
    widget.pause_button.click()  # disabled in a browser; a script may still call it
    assert "Cannot pause a task that is paused." in widget.notice.value
    widget.cancel_button.click()
    assert ">cancelled<" in widget.badge.value
    assert [p.rsplit("/", 1)[-1] for p in fake.paths("POST")[1:]] == ["pause", "pause", "cancel"]
    task.stop()


def test_sources_the_report_lists_are_not_listed_again(widget: ResearchWidget) -> None:
    sources = [
        {"id": "1", "title": "Generators", "url": "https://docs.python.org/3/g.html"},
        {"id": "2", "title": "notes", "url": "docs/notes.md"},
    ]
    report = (
        "# Generators\n\nThey yield [1][2].\n\n## Sources\n\n"
        "1. [Generators](https://docs.python.org/3/g.html)\n2. notes — `docs/notes.md`\n"
    )
    widget.on_event(ev(1, "result", report=report, sources=sources))
    widget.on_event(ev(2, "status", status="completed"))
    assert widget.report_markdown == report
    assert widget.sources.value == ""
