"""`_journal.replay`, the one reader of an event log into a state (full loads and heads)."""

from __future__ import annotations

from pathlib import Path

from store_helpers import new_state

from jupyter_deepresearch.extension.models import Status
from jupyter_deepresearch.extension.store import _journal as journal
from jupyter_deepresearch.extension.store.base import Event

TS = 1_736_332_200.0  # when the events were logged: a replay keeps these times


def write_log(folder: Path) -> tuple[Path, int]:
    """A log of events 1-5 with a checkpoint, run metadata, damaged records and a torn tail;
    also the offset of event 4's line."""
    state = new_state()
    folder.mkdir()
    log = folder / "t.events.jsonl"
    lines = [
        journal.event_line(Event(1, "status", {"status": "running"}), TS),
        journal.checkpoint_line("plan", {"queries": ["a"]}),
        journal.event_line(Event(2, "output", {"text": "first "}), TS + 1),
        b"{not json\n",  # damaged: passed over
        journal.line({"k": "e", "id": "3", "t": "output", "ts": TS, "d": {}}),  # unusable id
        journal.event_line(Event(3, "output", {}), TS + 2),  # no text: unusable
        journal.meta_line(2),
        journal.event_line(Event(4, "output", {"text": "second"}), TS + 3),
        journal.event_line(Event(5, "status", {"status": "completed"}), TS + 4),
        b'{"k":"e","id":6,"t":"out',  # torn: a write in progress
    ]
    header = journal.header_line(state, 1)
    log.write_bytes(header + b"".join(lines))
    return log, len(header) + sum(len(raw) for raw in lines[:7])


def test_a_full_replay_applies_events_checkpoints_and_attempts(folder: Path) -> None:
    log, _ = write_log(folder)
    state = new_state()
    found = journal.read_header(log)
    assert found is not None
    replayed = journal.replay(state, log, found[1])
    assert (state.status, state.last_event_id, state.attempts) == (Status.completed, 5, 2)
    assert state.outputs == ["first ", "second"]
    assert state.checkpoints == {"plan": {"queries": ["a"]}}
    assert state.finished_at is not None and state.finished_at.timestamp() == TS + 4
    assert replayed.skipped == 2  # the two unusable events; the damaged line is not a record
    assert replayed.position == log.stat().st_size - len(b'{"k":"e","id":6,"t":"out')


def test_a_head_replay_keeps_no_outputs_or_checkpoints_and_stops_at_durable(
    folder: Path,
) -> None:
    log, fourth = write_log(folder)
    state = new_state()
    found = journal.read_header(log)
    assert found is not None
    replayed = journal.replay(state, log, found[1], durable=3, full=False)
    # Event 3 is unusable but counted as seen, as it always was.
    assert (state.status, state.last_event_id, state.attempts) == (Status.running, 3, 2)
    assert state.outputs == [] and state.checkpoints == {}
    assert replayed.position == fourth  # event 4 is read again once the index vouches for it
    again = journal.replay(state, log, replayed.position, full=False)
    assert (state.status, state.last_event_id, again.skipped) == (Status.completed, 5, 0)


def test_events_the_state_already_has_are_not_applied_twice(folder: Path) -> None:
    log, _ = write_log(folder)
    state = new_state()
    found = journal.read_header(log)
    assert found is not None
    journal.replay(state, log, found[1])
    journal.replay(state, log, found[1])
    assert state.outputs == ["first ", "second"]
