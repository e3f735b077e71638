"""Replay: answer recorded requests from a recordings folder instead of their providers.

With `DeepResearchApp.replay_dir` set, the research pipeline is wrapped (`ReplayPipeline`): a
run whose request has a recording (same owner-independent fingerprint, `recordings.py`) emits
the recorded progress and output events and returns the recorded result, without calling any
provider. Everything else is a normal run: the task is created, queued and run by the manager
as any other, owned by whoever asked, and streamed live over SSE, so widgets and `task.wait()`
cannot tell the difference. A replayed task's events are the recorded run's, ids from 1: status
`queued`, `running`, the recorded progress and outputs, `result`, `completed`.

With `replay_only`, the manager asks `check_may_run` before it creates, resumes or restarts a
task: a request without a recording is refused at once (`NotRecorded`, 409, saying how to
record it) and nothing is stored. The wrapped pipeline refuses such runs as well (a task taken
over from another server): they stay paused, and no provider is ever called.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import DeepResearchError, MissingCredentials
from .lifecycle import EventType
from .models import ResearchRequest, ResearchResult
from .recordings import EVENTS_FILE, TASK_FILE, Recording, read_recording, recording_key
from .research.context import ResearchContext, ResearchPipeline

RECORD_HINT = (
    "To record it, run it once on a server that may call its provider (without "
    "DeepResearchApp.replay_only), then `jupyter deepresearch export --to {folder} TASK_ID` "
    "and commit the new folder."
)


class NotRecorded(DeepResearchError):
    """Under `replay_only`: a request that would run research has no recording."""

    # The request is valid; this server's mode (replay only) is what it conflicts with.
    status_code = 409


class NotRecordedRun(MissingCredentials):
    """A run under `replay_only` without a recording: the task stays paused, nothing is lost."""


class Replay:
    """The recordings of one folder, read on demand and cached while their files are unchanged."""

    def __init__(
        self, folder: Path | None, *, only: bool = False, log: logging.Logger | None = None
    ) -> None:
        self.folder = folder
        self.only = only
        self.log = log or logging.getLogger(__name__)
        self._cache: dict[str, tuple[tuple[int, ...], Recording]] = {}

    def find(self, request: ResearchRequest) -> Recording | None:
        """The recording of `request`, None if there is none; `BadRecording` if it is damaged."""
        if self.folder is None:
            return None
        key = recording_key(request)
        path = self.folder / key
        if not os.path.lexists(path):
            return None
        signature = _signature(path)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        recording = read_recording(path)
        self._cache[key] = (signature, recording)
        return recording

    def check_may_run(self, request: ResearchRequest) -> None:
        """Refuse (409) a request whose recording is damaged, or, under replay_only, one that
        has none: before anything is stored, not as a failed task."""
        if self.find(request) is None and self.only:
            raise NotRecorded(self.refusal(request))

    def refusal(self, request: ResearchRequest) -> str:
        key = recording_key(request)
        if self.folder is None:
            where = "no replay folder is set (DeepResearchApp.replay_dir)"
            folder = "DIR"
        elif not self.folder.is_dir():
            where = f"its replay folder {self.folder} does not exist"
            folder = str(self.folder)
        else:
            where = f"{self.folder} holds no recording of this request (key {key})"
            folder = str(self.folder)
        return (
            "This server only replays recorded research (DeepResearchApp.replay_only) and "
            f"{where}. " + RECORD_HINT.format(folder=folder)
        )

    def wrap(self, pipeline: ResearchPipeline) -> ResearchPipeline:
        return ReplayPipeline(self, pipeline)


class ReplayPipeline:
    """A `ResearchPipeline` that replays recorded runs and leaves the others to `inner`."""

    def __init__(self, replay: Replay, inner: ResearchPipeline) -> None:
        self.replay = replay
        self.inner = inner

    async def __call__(self, ctx: ResearchContext) -> ResearchResult:
        recording = self.replay.find(ctx.request)
        if recording is None:
            if self.replay.only:
                raise NotRecordedRun(self.replay.refusal(ctx.request))
            return await self.inner(ctx)
        self.replay.log.info("Replaying recording %s", recording.key)
        # Status and result events are the runner's own: it writes them around every run.
        for event in recording.events:
            data = event.data
            if event.type == EventType.progress:
                await ctx.progress(
                    str(data.get("step", "")), int(data.get("percentage", 0)), data.get("message")
                )
            elif event.type == EventType.output:
                await ctx.output(str(data["text"]))
        return ResearchResult.model_validate(recording.result)


def _signature(path: Path) -> tuple[int, ...]:
    """What changes when a recording's files are rewritten (0s for a file that is missing)."""
    values: list[int] = []
    for name in (TASK_FILE, EVENTS_FILE):
        try:
            info = (path / name).lstat()
        except OSError:
            values += [0, 0, 0]
            continue
        values += [info.st_mtime_ns, info.st_size, info.st_ino]
    return tuple(values)
