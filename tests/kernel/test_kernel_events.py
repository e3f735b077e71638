"""The SSE reader: resume with Last-Event-ID after drops and restarts, back off, stop cleanly."""

from __future__ import annotations

import threading
import time

import pytest
from kernel_fakes import DROP, END, TASK_ID, FakeServer, sse

from jupyter_deepresearch.kernel_helpers import (
    Backoff,
    ResearchClient,
    TaskEvent,
    TaskNotFoundError,
)

PROGRESS = [sse(i, "progress", {"step": "search", "percentage": 10 * i}) for i in range(1, 6)]
DONE = sse(6, "status", {"status": "completed"})


def ids(events: list[TaskEvent]) -> list[int]:
    return [e.id for e in events]


def last_event_ids(fake: FakeServer) -> list[str | None]:
    return [r.headers.get("last-event-id") for r in fake.requests if r.path.endswith("/events")]


def test_a_dropped_connection_resumes_after_the_last_event(
    fake: FakeServer, client: ResearchClient
) -> None:
    fake.sse_scripts = [["retry: 20\n\n", *PROGRESS[:2], DROP], [*PROGRESS[2:], DONE, END]]
    events = list(client.events(TASK_ID))
    assert ids(events) == [1, 2, 3, 4, 5, 6]
    assert last_event_ids(fake) == [None, "2"]
    assert events[-1] == TaskEvent(6, "status", {"status": "completed"})


def test_a_stream_that_ends_early_is_a_server_restart_and_is_resumed(
    fake: FakeServer, client: ResearchClient
) -> None:
    # A server going down ends the body cleanly, mid-task: that is not the end of the task.
    fake.sse_scripts = [[*PROGRESS[:3], END], [*PROGRESS[3:], DONE, END]]
    assert ids(list(client.events(TASK_ID))) == [1, 2, 3, 4, 5, 6]
    assert last_event_ids(fake) == [None, "3"]


def test_the_server_going_away_and_coming_back_on_its_port(
    fake: FakeServer, client: ResearchClient
) -> None:
    fake.sse_scripts = [[*PROGRESS[:2], DROP]]
    stream = client.event_stream(TASK_ID)
    received: list[TaskEvent] = []
    thread = threading.Thread(target=lambda: received.extend(stream))
    fake.stop()  # refused connections first
    fake.start()
    thread.start()
    deadline = time.monotonic() + 10
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    fake.stop()
    time.sleep(0.3)  # several refused reconnects, backing off
    fake.sse_scripts = [[*PROGRESS[2:], DONE, END]]
    fake.start()
    thread.join(10)
    assert not thread.is_alive()
    assert ids(received) == [1, 2, 3, 4, 5, 6]
    assert last_event_ids(fake)[-1] == "2"


def test_503_is_retried_with_backoff(fake: FakeServer, client: ResearchClient) -> None:
    fake.sse_scripts = [[("status", 503)], [("status", 503)], [*PROGRESS, DONE, END]]
    reconnects: list[int] = []
    stream = client.event_stream(TASK_ID)
    stream._on_reconnect = lambda failures, error: reconnects.append(failures)
    assert ids(list(stream)) == [1, 2, 3, 4, 5, 6]
    assert reconnects == [1, 2]


def test_204_ends_the_stream_without_retrying(fake: FakeServer, client: ResearchClient) -> None:
    fake.sse_scripts = [[("status", 204)]]
    assert list(client.events(TASK_ID, after=6)) == []
    assert last_event_ids(fake) == ["6"]


def test_a_terminal_status_then_end_of_stream_is_final(
    fake: FakeServer, client: ResearchClient
) -> None:
    fake.sse_scripts = [[*PROGRESS, DONE, END]]
    assert ids(list(client.events(TASK_ID))) == [1, 2, 3, 4, 5, 6]
    assert len(last_event_ids(fake)) == 1


def test_a_deleted_task_raises_with_the_servers_message(
    fake: FakeServer, client: ResearchClient
) -> None:
    fake.sse_scripts = [[*PROGRESS[:1], DROP], [("status", 404)]]
    with pytest.raises(TaskNotFoundError, match="scripted 404") as caught:
        list(client.events(TASK_ID))
    assert caught.value.status_code == 404


def test_keepalives_and_empty_blocks_are_not_events(
    fake: FakeServer, client: ResearchClient
) -> None:
    fake.sse_scripts = [[": keepalive\n\n", PROGRESS[0], ": keepalive\n\n", "\n", DONE, END]]
    assert ids(list(client.events(TASK_ID))) == [1, 6]


def test_an_event_split_across_chunks_is_decoded_whole(
    fake: FakeServer, client: ResearchClient
) -> None:
    text = sse(1, "output", {"text": "line one\nline two é"})
    fake.sse_scripts = [[text[:7], text[7:20], text[20:], DONE, END]]
    events = list(client.events(TASK_ID))
    assert events[0] == TaskEvent(1, "output", {"text": "line one\nline two é"})


def test_follow_false_reads_what_is_stored_and_does_not_reconnect(
    fake: FakeServer, client: ResearchClient
) -> None:
    fake.sse_scripts = [[*PROGRESS[:2], END]]
    assert ids(list(client.events(TASK_ID, follow=False))) == [1, 2]
    assert fake.requests[-1].query == {"follow": ["false"]}


def test_close_from_another_thread_wakes_an_idle_reader(
    fake: FakeServer, client: ResearchClient
) -> None:
    release = threading.Event()
    fake.sse_scripts = [[PROGRESS[0], ("wait", release), END]]
    stream = client.event_stream(TASK_ID)
    received: list[TaskEvent] = []
    thread = threading.Thread(target=lambda: received.extend(stream))
    thread.start()
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.01)
    stream.close()
    thread.join(5)  # the server holds the stream open until `release`: only close() ends it
    release.set()
    assert not thread.is_alive()
    assert ids(received) == [1]


def test_backoff_grows_from_the_server_hint_and_is_capped() -> None:
    backoff = Backoff(initial=0.5, factor=2, maximum=4, jitter=0)
    assert [backoff.delay(n, None) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 4, 4]
    assert backoff.delay(1, 3.0) == 3.0
    jittered = Backoff(initial=1, jitter=0.1).delay(1, None)
    assert 1 <= jittered <= 1.1
