"""Our API behind a real JupyterHub: through the proxy, per-user, with the hub's own tokens."""

from __future__ import annotations

import pytest

from dr_testing.hub import Hub
from dr_testing.sse_events import parse_events

pytestmark = pytest.mark.slow


def test_a_research_streams_through_the_proxy(shared_hub: Hub) -> None:
    with shared_hub.client("alice") as alice:
        created = alice.post("tasks", json={"query": "through the proxy units=2"})
        assert created.status_code == 201, created.text
        task_id = created.json()["task_id"]
        stream = alice.get(f"tasks/{task_id}/events")  # closes once the task is terminal
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = parse_events(stream.content)
        assert [event_id for event_id, _, _ in events] == list(range(1, len(events) + 1))
        assert events[-1][1:] == ("status", {"status": "completed"})


def test_a_user_cannot_use_another_users_server(shared_hub: Hub) -> None:
    with shared_hub.client("alice", as_user="bob") as bob_on_alice:
        assert bob_on_alice.get("tasks").status_code == 403


def test_a_user_does_not_see_another_users_task_ids(shared_hub: Hub) -> None:
    with shared_hub.client("alice") as alice, shared_hub.client("bob") as bob:
        task_id = alice.post("tasks", json={"query": "alice's own units=1"}).json()["task_id"]
        assert alice.get(f"tasks/{task_id}").status_code == 200
        assert bob.get(f"tasks/{task_id}").status_code == 404
        assert task_id not in {t["task_id"] for t in bob.get("tasks").json()["tasks"]}
