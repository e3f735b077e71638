"""Random operation sequences against a model: what is flushed survives reloads and crashes."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import collect, new_state

from jupyter_deepresearch.extension.store.base import TaskState
from jupyter_deepresearch.extension.store.files import FileTaskStore

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("output"), st.text(max_size=40)),
        st.tuples(st.just("progress"), st.integers(0, 100)),
        st.tuples(st.just("status"), st.sampled_from(["running", "paused", "completed"])),
        st.tuples(st.just("checkpoint"), st.sampled_from(["plan", "q0", "q1"])),
        st.tuples(st.just("attempt"), st.none()),
        st.tuples(st.sampled_from(["flush", "save", "reset", "reload", "crash"]), st.none()),
    ),
    max_size=40,
)


@dataclass
class Model:
    """What the task should hold: events of the current run, checkpoints, attempts."""

    run_first: int = 1
    last_id: int = 0
    events: list[tuple[int, str, Any]] = field(default_factory=list)
    checkpoints: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    durable_id: int = 0  # events up to here are flushed
    logged_attempts: int = 0  # goes out with the next flush (logged with an event or a save)
    durable_attempts: int = 0

    def crash(self) -> None:
        self.events = [e for e in self.events if e[0] <= self.durable_id]
        self.last_id = max(self.durable_id, self.run_first - 1)
        self.attempts = self.durable_attempts


async def check(store: FileTaskStore, state: TaskState, model: Model) -> None:
    assert state.last_event_id == model.last_id
    assert state.run_first_event_id == model.run_first
    assert state.outputs == [data for _, kind, data in model.events if kind == "output"]
    assert state.checkpoints == model.checkpoints
    assert state.attempts == model.attempts
    ids = [e[0] for e in model.events]
    assert [e.id for e in await collect(store, state.task_id)] == ids
    for after in {0, model.run_first, model.last_id - 1, *ids[len(ids) // 2 : len(ids) // 2 + 1]}:
        assert [e.id for e in await collect(store, state.task_id, after)] == [
            i for i in ids if i > after
        ]


async def scenario(folder: Path, ops: list[tuple[str, Any]]) -> None:
    store = FileTaskStore(folder, flush_interval=3600)  # no background flush: deterministic
    await store.open()
    state = new_state("c" * 32)
    assert await store.create(state)
    model = Model()
    for op, arg in ops:
        if op in ("output", "progress", "status"):
            key = {"output": "text", "progress": "percentage", "status": "status"}[op]
            data = {key: arg, **({"step": "search"} if op == "progress" else {})}
            event = await store.append(state, op, data)
            model.last_id += 1
            assert event.id == model.last_id
            model.events.append((event.id, op, arg))
            model.logged_attempts = model.attempts  # a new turn is logged with its first event
        elif op == "checkpoint":
            await store.save_checkpoint(state, arg, model.last_id)
            model.checkpoints[arg] = model.last_id
            model.durable_id = model.last_id
            model.durable_attempts = model.logged_attempts
        elif op == "attempt":
            state.attempts += 1
            model.attempts += 1
        elif op in ("flush", "save"):
            await (store.flush() if op == "flush" else store.save(state))
            model.durable_id = model.last_id
            if op == "save":
                model.logged_attempts = model.attempts
            model.durable_attempts = model.logged_attempts
        elif op == "reset":
            await store.reset_run(state)
            model.run_first = model.last_id + 1
            model.events, model.checkpoints = [], {}
            model.attempts = model.logged_attempts = model.durable_attempts = 0
            model.durable_id = model.last_id
        else:
            if op == "reload":
                await store.close()
                model.durable_id = model.last_id
            else:  # crash: the process dies, its buffers with it
                assert store._flusher is not None
                store._flusher.cancel()
                model.crash()
            store = FileTaskStore(folder, flush_interval=3600)
            await store.open()
            loaded = await store.load(state.task_id)
            assert loaded is not None
            state = loaded
            if op == "reload":
                model.durable_attempts = model.logged_attempts = model.attempts = state.attempts
        await check(store, state, model) if op in ("reload", "crash", "reset") else None
    await store.close()
    await check(FileTaskStore(folder), state, model)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_random_operations_match_the_model(ops: list[tuple[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp) / "tasks", ops))
