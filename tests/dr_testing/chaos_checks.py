"""What the chaos run proves from a finished task's stored events (each check returns the
problems it found, as sentences, so that one report lists them all with the run's seed).

The scripted pipeline (`dr_testing.pipelines.stepped`) makes the log of a run a sentence of a
small grammar. Each runner's turn (a *segment*) starts with a `running` status and goes:

    progress plan, then for each unit k: [output k] progress "unit k",
    then progress report, result, status completed

and may be cut anywhere (a kill, a freeze past the lease, a storage outage), after which only
`paused` or `queued` statuses come before the next `running`. Unit k's checkpoint is durable
before its progress event is written and after its output is, so a later segment skips unit k
(no output) exactly when k's output is already in the log, and redoes it (output again) only
if k's progress is not. Two runners writing one task at once cannot both follow this: their
units interleave, an output repeats within a segment, or a unit is redone after its
checkpoint. Event ids, consecutive from 1 with no duplicate, prove the same for every writer.

One exception, on Redis only (`lost_checkpoints=True`): when an outage fails a checkpoint's
write, the `redis` store keeps the checkpoint in the runner's memory but never writes it later
(the `files` store writes it with its next flush). The same server's resume then skips the unit
(its progress is logged) and a later takeover, reading Redis, redoes it. Such a redo is counted,
not failed, when a storage pause came between the unit's output and its progress.
"""

from __future__ import annotations

import re
from typing import Any

StoredEvent = tuple[int, str, dict[str, Any]]

_UNIT = re.compile(r"^unit (\d+)$")
_OUTPUT = re.compile(r"^Unit (\d+) of .* done\.$")


def expected_report(query: str, units: int) -> str:
    """The report of an uninterrupted run of the scripted pipeline."""
    lines = [f"Unit {n} of {query!r} done." for n in range(units)]
    return "# Report\n\n" + "\n".join(f"- {line} [1]" for line in lines)


def check_ids(events: list[StoredEvent]) -> list[str]:
    ids = [event_id for event_id, _, _ in events]
    for position, event_id in enumerate(ids, start=1):
        if event_id != position:
            return [f"event ids not consecutive from 1: at position {position} id {event_id}"]
    return []


def running_count(events: list[StoredEvent]) -> int:
    return sum(1 for _, kind, data in events if kind == "status" and data["status"] == "running")


def _token(kind: str, data: dict[str, Any]) -> tuple[str, Any]:
    """An event as a grammar token: ("output", k), ("unit", k), ("plan"|"report"|..., None)."""
    if kind == "output":
        match = _OUTPUT.match(data.get("text", ""))
        return ("output", int(match.group(1)) if match else data.get("text"))
    if kind == "progress":
        match = _UNIT.match(data.get("message", ""))
        return ("unit", int(match.group(1))) if match else (data.get("step", "?"), None)
    if kind == "status":
        return ("status", data["status"])
    return (kind, None)


class _Segments:
    """Walks a scripted run's events through the grammar of the module docstring."""

    def __init__(self, units: int, *, lost_checkpoints: bool = False) -> None:
        self.units = units
        self.lost_checkpoints = lost_checkpoints
        self.unsure: set[int] = set()  # units whose checkpoint an outage may have failed
        self.redone = 0  # redos of such units
        self.in_segment = False
        self.expect = "plan"  # "plan", ("unit", k), "report", "result", "completed", "done"
        self.unit = 0
        self.output_pending = False  # this segment wrote unit k's output, its progress is due
        self.outputs: set[int] = set()  # units whose output is in the log so far
        self.progressed: set[int] = set()  # units whose progress (after the checkpoint) is

    def step(self, kind: str, data: dict[str, Any]) -> str | None:
        token = _token(kind, data)
        if token == ("status", "running"):
            self.in_segment, self.expect, self.unit, self.output_pending = True, "plan", 0, False
            return None
        if not self.in_segment:
            if token in (("status", "queued"), ("status", "paused")):
                return None
            return f"{token} outside any runner's turn"
        if token in (("status", "paused"), ("status", "queued")) and self.expect != "done":
            self.in_segment = False  # a turn cut short; the next one starts with `running`
            if self.output_pending and data.get("reason") == "storage":
                self.unsure.add(self.unit)  # an outage between its output and checkpoint
            return None
        return self._in_turn(token)

    def _in_turn(self, token: tuple[str, Any]) -> str | None:
        expect = self.expect
        if expect == "plan":
            self.expect = "units" if self.units else "report"
            return None if token == ("plan", None) else f"{token} where the plan was due"
        if expect == "units":
            return self._unit(token)
        order = {"report": ("report", None), "result": ("result", None)}
        if expect in order:
            self.expect = "result" if expect == "report" else "completed"
            return None if token == order[expect] else f"{token} where {expect} was due"
        if expect == "completed":
            self.expect = "done"
            return None if token == ("status", "completed") else f"{token} instead of completed"
        return f"{token} after the run completed"

    def _unit(self, token: tuple[str, Any]) -> str | None:
        k = self.unit
        if token == ("output", k) and not self.output_pending:
            self.output_pending = True
            self.outputs.add(k)
            if k in self.progressed:
                if self.lost_checkpoints and k in self.unsure:
                    self.redone += 1
                    return None
                return f"unit {k} redone after its checkpoint (its progress was logged)"
            return None
        if token == ("unit", k):
            if not self.output_pending and k not in self.outputs:
                return f"unit {k} skipped without its output ever being logged"
            self.progressed.add(k)
            self.output_pending = False
            self.unit += 1
            if self.unit == self.units:
                self.expect = "report"
            return None
        return f"{token} where unit {k}'s output or progress was due"


def check_scripted(
    events: list[StoredEvent], query: str, units: int, *, lost_checkpoints: bool = False
) -> tuple[list[str], int]:
    """The grammar above, the report of an uninterrupted run, and the final status; the
    problems, and how many units were redone because Redis lost their checkpoint."""
    problems = check_ids(events)
    walk = _Segments(units, lost_checkpoints=lost_checkpoints)
    for event_id, kind, data in events:
        problem = walk.step(kind, data)
        if problem:
            problems.append(f"id {event_id}: {problem}")
            break  # the rest would only repeat the first break of the grammar
    results = [data for _, kind, data in events if kind == "result"]
    if not results or results[-1].get("report") != expected_report(query, units):
        problems.append("the report differs from an uninterrupted run's")
    return problems, walk.redone


def check_offline(events: list[StoredEvent], result: dict[str, Any] | None) -> list[str]:
    """Real research: ids, turns that start with `running`, and the uninterrupted result."""
    problems = check_ids(events)
    if not events or events[-1][1:] != ("status", {"status": "completed"}):
        problems.append("the last event is not `completed`")
    percentages = [data["percentage"] for _, kind, data in events if kind == "progress"]
    if percentages != sorted(percentages):
        problems.append("a progress percentage went backwards")
    if result is None:
        problems.append("no result")
    return problems


def check_file_log(records: list[dict[str, Any]]) -> list[str]:
    """The raw `files` log: one line per event id, and no unit's output after its checkpoint."""
    problems: list[str] = []
    ids = [r["id"] for r in records if r["k"] == "e"]
    if ids and ids != list(range(ids[0], ids[0] + len(ids))):
        problems.append(f"raw log event ids not consecutive: {ids[:3]}...{ids[-3:]}")
    checkpointed: set[int] = set()
    for record in records:
        if record["k"] == "c" and record["key"].startswith("unit-"):
            checkpointed.add(int(record["key"].removeprefix("unit-")))
        elif record["k"] == "e" and record["t"] == "output":
            match = _OUTPUT.match(record["d"].get("text", ""))
            if match and int(match.group(1)) in checkpointed:
                problems.append(f"raw log: unit {match.group(1)}'s output after its checkpoint")
    return problems


def check_reader(read: list[StoredEvent], stored: list[StoredEvent]) -> list[str]:
    """A reader that followed the task from the start holds exactly the stored events."""
    if read == stored:
        return []
    for position, (got, want) in enumerate(zip(read, stored, strict=False)):
        if got != want:
            return [f"reader's event #{position + 1} is {got}, the store's is {want}"]
    return [f"reader received {len(read)} events, the store holds {len(stored)}"]
