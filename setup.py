"""Builds the JupyterLab extension in `labextension/` while pip builds the package.

Everything else is declared in pyproject.toml. `pip install .` and `pip install -e .` both run
the `build` command's sub-commands, so the front end is built (with `jlpm`, which the build
requirement `jupyterlab` provides) when Node.js is found, and its files are installed as data
files into `share/jupyter/labextensions/jupyter-deepresearch/`. Without Node.js the Python side
installs as before and the build says the front end was skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

from setuptools import Command, setup
from setuptools.command.build import build
from setuptools.dist import Distribution

HERE = Path(__file__).parent
SOURCE = Path("labextension")
OUTPUT = SOURCE / "prebuilt"
TARGET = "share/jupyter/labextensions/jupyter-deepresearch"
SKIP_ENV = "JUPYTER_DEEPRESEARCH_SKIP_LABEXTENSION"
INPUTS = ("package.json", "yarn.lock", "tsconfig.json", "src", "style")


class build_labextension(Command):
    """Build the JupyterLab extension with jlpm, unless it is up to date or Node is missing."""

    description = "build the JupyterLab extension (skipped when Node.js is not found)"
    user_options: ClassVar[list[tuple[str, str | None, str]]] = []

    def initialize_options(self) -> None:
        pass

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        if not (HERE / SOURCE / "package.json").exists():
            pass  # a source tree without the front end's sources (a prebuilt sdist)
        elif os.environ.get(SKIP_ENV):
            _say(f"skipped building the JupyterLab extension: {SKIP_ENV} is set")
        elif _up_to_date():
            _say("the JupyterLab extension is up to date (labextension/prebuilt)")
        elif shutil.which("node") is None:
            kept = (HERE / OUTPUT / "package.json").exists()
            _say(
                "skipped building the JupyterLab extension: Node.js not found. "
                + (
                    "Installing the older build found in labextension/prebuilt."
                    if kept
                    else "The Python package works without it; install Node.js 20+ and "
                    "reinstall to get the Research panel in JupyterLab."
                )
            )
        else:
            _build()
        self._add_data_files()

    def _add_data_files(self) -> None:
        # install_data reads this same list later (in regular and editable installs).
        if not (HERE / OUTPUT / "package.json").exists():
            return
        data_files = self.distribution.data_files
        if data_files is None:
            data_files = self.distribution.data_files = []
        for folder, _, files in os.walk(HERE / OUTPUT):
            relative = Path(folder).relative_to(HERE / OUTPUT)
            paths = [str(Path(folder, f).relative_to(HERE)) for f in sorted(files)]
            data_files.append((str(Path(TARGET, relative)), paths))
        data_files.append((TARGET, [str(SOURCE / "install.json")]))


def _build() -> None:
    jlpm = shutil.which("jlpm") or shutil.which("jlpm", path=str(Path(sys.executable).parent))
    if jlpm is None:
        raise SystemExit(
            "Building the JupyterLab extension needs `jlpm` from the `jupyterlab` package "
            f"(a build requirement); set {SKIP_ENV}=1 to install without the front end."
        )
    cwd = HERE / SOURCE
    _say("building the JupyterLab extension: jlpm install --immutable && jlpm build:prod")
    for args in (["install", "--immutable"], ["build:prod"]):
        try:
            subprocess.run([jlpm, *args], cwd=cwd, check=True)
        except subprocess.CalledProcessError as exc:
            raise SystemExit(
                f"`jlpm {' '.join(args)}` failed in {cwd} (exit {exc.returncode}); set "
                f"{SKIP_ENV}=1 to install the Python package without the front end."
            ) from exc


def _up_to_date() -> bool:
    """True when the built extension is newer than every file it is built from."""
    stamp = HERE / OUTPUT / "package.json"
    if not stamp.exists():
        return False
    built = stamp.stat().st_mtime
    for name in INPUTS:
        path = HERE / SOURCE / name
        files = path.rglob("*") if path.is_dir() else [path]
        if any(f.is_file() and f.stat().st_mtime > built for f in files):
            return False
    return True


def _say(message: str) -> None:
    # pip shows a build's output with -v only; stderr at least reaches logs and CI output.
    print(f"jupyter-deepresearch: {message}", file=sys.stderr, flush=True)


class build_with_labextension(build):
    """`build`, with the JupyterLab extension built first."""

    sub_commands: ClassVar = [("build_labextension", None), *build.sub_commands]


class DataInEditableInstalls(Distribution):
    """Editable installs get the data files (the extension, the server config) too.

    setuptools' `editable_wheel` installs data files only where `dist.has_data()` is true, a
    method `Distribution` does not have (it has `has_data_files`), so they were left out.
    """

    def has_data(self) -> bool:
        return bool(self.has_data_files())


setup(
    distclass=DataInEditableInstalls,
    cmdclass={"build": build_with_labextension, "build_labextension": build_labextension},
)
