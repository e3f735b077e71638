"""The notebooks' harness: a real Jupyter server with the extension, for nbval and for authors.

`pytest --nbval notebooks` starts one server through `conftest.py`; `python notebooks/nb_harness.py`
starts one and re-executes every notebook in place (run it after editing a notebook, then review
the saved outputs: nbval compares against them).

The server runs the real offline pipeline, paced: each progress event waits `NB_PACE_SECONDS`
(default 0.2 s) the way a real language model would, so that the notebooks can pause, cancel and
reattach in the middle of a task instead of after it.

The notebooks in `REPLAYED` get a server of their own with `replay_only` over `recordings/`:
their research is answered from the committed recording and no provider is ever called (the
conftest listens on the model's port and fails the run if anything connects there).
`python notebooks/nb_harness.py --record` makes those recordings again, honestly: it runs each
such notebook on a live server whose model is the test suite's OpenAI-compatible fake, listening
on the notebook's model URL, then exports the finished tasks into `recordings/`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS_DIR = HERE.parent / "tests"
if str(TESTS_DIR) not in sys.path:  # run as a script: the test suite's helpers
    sys.path.insert(0, str(TESTS_DIR))

from dr_testing.servers import ServerProcess  # noqa: E402

NOTEBOOKS = (
    "quickstart.ipynb",
    "reattach.ipynb",
    "providers.ipynb",
    "manage-tasks.ipynb",
    "recorded-research.ipynb",
)
REPLAYED = frozenset({"recorded-research.ipynb"})
RECORDINGS = HERE / "recordings"
# The port of the replayed notebooks' model URL (Ollama's default, http://127.0.0.1:11434/v1).
MODEL_PORT = 11434


class _Paced:
    """A `ResearchContext` whose progress events take time, like a model writing them."""

    def __init__(self, ctx: Any, seconds: float) -> None:
        self._ctx = ctx
        self._seconds = seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    async def progress(self, step: str, percentage: int, message: str | None = None) -> None:
        await asyncio.sleep(self._seconds)
        await self._ctx.progress(step, percentage, message)


async def paced_research(ctx: Any) -> Any:
    """The real pipeline (`run_research`), paced by `NB_PACE_SECONDS`."""
    from jupyter_deepresearch.extension.research import run_research

    return await run_research(_Paced(ctx, float(os.environ.get("NB_PACE_SECONDS", "0.2"))))


class NotebookServer(ServerProcess):
    """The test suite's server process in a temporary folder, running the paced pipeline."""

    def __init__(self, *, replay: bool = False) -> None:
        workdir = Path(tempfile.mkdtemp(prefix="dr-notebooks-"))
        path = (str(HERE), str(TESTS_DIR), os.environ.get("PYTHONPATH"))
        settings: dict[str, Any] = {"pipeline": "nb_harness:paced_research", "flush_interval": 0.1}
        if replay:
            settings.update(replay_dir=str(RECORDINGS), replay_only=True)
        super().__init__(
            workdir,
            workdir / "tasks",
            settings=settings,
            env={"PYTHONPATH": os.pathsep.join(p for p in path if p)},
        )

    def kernel_env(self) -> dict[str, str]:
        """What a kernel needs to find this server (and to print text instead of widgets)."""
        return {
            "JUPYTER_DEEPRESEARCH_URL": f"http://127.0.0.1:{self.port}/",
            "JUPYTER_DEEPRESEARCH_TOKEN": self.token,
            # nbval and nbclient have no widget front end.
            "JUPYTER_DEEPRESEARCH_DISPLAY": "text",
        }

    def start(self, timeout: float = 120.0) -> NotebookServer:
        try:
            super().start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> int | None:
        code = super().stop(timeout)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return code


def execute(path: Path, server: NotebookServer, *, save: bool) -> None:
    """Run a notebook's cells (as nbval does) with `server` as the kernel's server."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    skipped = {}
    for index, cell in enumerate(notebook.cells):
        # nbval never runs these; neither do we (they need a service outside the machine).
        if cell.cell_type == "code" and cell.source.lstrip().startswith("# NBVAL_SKIP"):
            skipped[index] = cell.source
            cell.source = ""
    saved = {k: os.environ.get(k) for k in server.kernel_env()}
    os.environ.update(server.kernel_env())
    try:
        client = NotebookClient(
            notebook,
            timeout=300,
            record_timing=False,  # no timestamps in the saved notebooks
            resources={"metadata": {"path": str(HERE)}},
        )
        client.execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    for index, source in skipped.items():
        cell = notebook.cells[index]
        cell.source, cell.outputs, cell.execution_count = source, [], None
    if save:
        nbformat.write(notebook, path)


def regenerate(names: list[str]) -> None:
    """Execute notebooks in place against fresh servers, as nbval will, saving their outputs."""
    servers: dict[bool, NotebookServer] = {}
    try:
        for name in names or NOTEBOOKS:
            replay = name in REPLAYED
            if replay not in servers:
                servers[replay] = NotebookServer(replay=replay).start()
            execute(HERE / name, servers[replay], save=True)
            print(f"executed {name}")
    finally:
        for server in servers.values():
            server.stop()


def record(names: list[str]) -> None:
    """Record the replayed notebooks' research against the fake model, into `RECORDINGS`."""
    import subprocess

    from research.research_fakes import FakeLLM

    model = FakeLLM(port=MODEL_PORT)
    model.start()
    server = NotebookServer().start()
    try:
        for name in names or sorted(REPLAYED):
            execute(HERE / name, server, save=False)
            print(f"ran {name} against the fake model ({model.calls()} calls so far)")
        command = [sys.executable, "-m", "jupyter_deepresearch.extension.worker", "export"]
        command += ["--to", str(RECORDINGS), "--overwrite", "--store=files"]
        command += [f"--storage-dir={server.storage_dir}"]
        subprocess.run(command, check=True)
    finally:
        server.stop()
        model.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--record"]:
        record(sys.argv[2:])
    else:
        regenerate(sys.argv[1:])
