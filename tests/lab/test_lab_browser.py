"""The JupyterLab extension in a real browser: panel, live progress, controls, notifications,
report tab, and a saved notebook reopened after a kernel restart.

The server runs the scripted `stepped` pipeline (tests/dr_testing/pipelines.py) so that tasks
last long enough to watch; everything else (Lab, the extension, kernels, widgets) is real.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from lab_server import LabServer

pytestmark = pytest.mark.slow

# The notebook in the main area's current tab (Lab may keep others open, hidden).
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"
IMPORT = "from jupyter_deepresearch.kernel_helpers import research"
# Where the README's screenshots come from: `DR_SCREENSHOTS=docs/images pytest tests/lab`.
SCREENSHOTS = os.environ.get("DR_SCREENSHOTS")


def open_notebook(page: Any, lab: LabServer, path: str) -> None:
    """Open Lab at a notebook and wait until its kernel is idle."""
    page.goto(lab.lab_url(path))
    page.locator(f"{NOTEBOOK} .jp-Cell").first.wait_for()
    kernel_idle(page)


def kernel_idle(page: Any) -> None:
    page.locator(".jp-StatusBar-Widget", has_text="Python 3 (ipykernel) | Idle").wait_for()


def run_first_cell(page: Any) -> None:
    page.locator(f"{NOTEBOOK} .jp-Cell .cm-content").first.click()
    page.keyboard.press("Shift+Enter")


def open_panel(page: Any) -> Any:
    panel = page.locator("#jp-deepresearch-panel")
    tab = page.locator("li[data-id='jp-deepresearch-panel']")
    tab.wait_for()
    if not panel.is_visible():  # the layout Lab restores may show it already
        tab.click()
    panel.wait_for()
    return panel


def task_row(panel: Any, query: str) -> Any:
    return panel.locator(".jp-DeepResearch-task", has_text=query)


def progress_moves(page: Any, row: Any) -> None:
    """Wait until the row's progress bar moves past where it is now."""
    now = int(row.locator("progress").get_attribute("value") or 0)
    page.wait_for_function(
        "([el, v]) => Number(el.getAttribute('value')) > v",
        arg=[row.locator("progress").element_handle(), now],
    )


def widget_badge(page: Any, status: str) -> Any:
    """The status badge of the notebook's research widget."""
    return page.locator(".jp-OutputArea-output .widget-html span", has_text=status)


def report_without_widget(page: Any, text: str) -> None:
    """Wait until the first cell's output shows `text` and holds no widget."""
    page.wait_for_function(
        """([selector, text]) => {
            const out = document.querySelector(selector);
            return out !== null && out.textContent.includes(text)
                && out.querySelector('.jupyter-widgets') === null;
        }""",
        arg=[f"{NOTEBOOK} .jp-Cell .jp-OutputArea", text],
    )


def shot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name))


def test_a_notebook_task_moves_live_in_the_panel_and_obeys_its_buttons(
    lab: LabServer, page: Any
) -> None:
    query = "panel-live units=60 delay=0.25"
    path = lab.notebook("live.ipynb", f"{IMPORT}\ntask = research({query!r})")
    open_notebook(page, lab, path)
    run_first_cell(page)
    widget_badge(page, "running").wait_for()

    panel = open_panel(page)
    row = task_row(panel, query)
    row.locator(".jp-DeepResearch-badge", has_text="running").wait_for()
    progress_moves(page, row)
    assert row.locator(".jp-DeepResearch-step").inner_text() in ("plan", "search")
    shot(page, "lab-panel.png")

    row.locator(".jp-DeepResearch-action-pause").click()
    row.locator(".jp-DeepResearch-badge", has_text="paused").wait_for()
    widget_badge(page, "paused").wait_for()  # the kernel's widget saw the panel's pause

    row.locator(".jp-DeepResearch-action-resume").click()
    row.locator(".jp-DeepResearch-badge", has_text="running").wait_for()
    widget_badge(page, "running").wait_for()

    # Cancel, then delete: deleting a run the server has just resumed once left it running
    # under a loaded CI machine (a race being investigated, see the notes); delete of
    # a task that still runs is covered by tests/server and tests/multi.
    row.locator(".jp-DeepResearch-action-cancel").click()
    row.locator(".jp-DeepResearch-badge", has_text="cancelled").wait_for()
    widget_badge(page, "cancelled").wait_for()
    row.locator(".jp-DeepResearch-action-delete").click()
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_text("Delete this research?").wait_for()
    dialog.get_by_role("button", name="Delete").click()
    dialog.wait_for(state="detached")
    row.wait_for(state="detached")
    with lab.api() as api:
        assert api.get("api/deepresearch/tasks").json()["tasks"] == []


def test_a_completion_notification_arrives_with_the_notebook_closed_and_opens_the_report(
    lab: LabServer, page: Any
) -> None:
    query = "notify units=40 delay=0.25"
    path = lab.notebook("notify.ipynb", f"{IMPORT}\ntask = research({query!r})")
    lab.notebook("target.ipynb", "1 + 1")
    open_notebook(page, lab, path)
    panel = open_panel(page)
    run_first_cell(page)
    task_row(panel, query).locator(".jp-DeepResearch-badge", has_text="running").wait_for()
    page.locator(".jp-mod-current .lm-TabBar-tabCloseIcon").click()  # close the notebook
    page.locator(".jp-Dialog").get_by_role("button", name="Discard").click()
    page.locator(".jp-Notebook").wait_for(state="detached")
    assert task_row(panel, query).locator(".jp-DeepResearch-badge").inner_text() != "completed"

    toast = page.locator(".Toastify__toast", has_text="Research completed")
    toast.wait_for()
    assert "notify units=40" in toast.inner_text()
    toast.get_by_role("button", name="Open report").click()
    report = page.locator(".jp-DeepResearch-report")
    report.get_by_text("Unit 39 of").wait_for()
    assert report.locator("h1", has_text="Report").count() == 1
    shot(page, "lab-report.png")

    # "Save as Markdown" writes into the file browser's folder (the root here).
    page.locator(".jp-DeepResearch-save").click()
    page.locator(".Toastify__toast", has_text="Saved the report").wait_for()
    [saved] = list(lab.root.glob("notify-units-40*.md"))
    assert "Unit 39 of" in saved.read_text()

    # "Insert into notebook" adds the report as a Markdown cell of the active notebook.
    page.goto(lab.lab_url("target.ipynb"))
    kernel_idle(page)
    panel = open_panel(page)
    task_row(panel, query).locator(".jp-DeepResearch-open").click()  # the report, again
    page.locator(".jp-DeepResearch-insert").click()
    page.locator(".lm-TabBar-tab", has_text="target.ipynb").click()
    cell = page.locator(f"{NOTEBOOK} .jp-MarkdownCell", has_text="Unit 39 of")
    cell.wait_for()
    assert "Research:" in cell.inner_text()


def test_a_saved_notebook_reopened_after_a_kernel_restart_shows_the_report(
    lab: LabServer, page: Any
) -> None:
    query = "reopen units=3 delay=0.1"
    path = lab.notebook("reopen.ipynb", f"{IMPORT}\ntask = research({query!r})")
    open_notebook(page, lab, path)
    run_first_cell(page)
    report_without_widget(page, "Unit 2 of")  # the widget turned into the Markdown report
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.jp-mod-current.jp-mod-dirty')")
    with lab.api() as api:
        kernels = {s["kernel"]["id"] for s in api.get("api/sessions").json() if s["path"] == path}
        assert kernels
        for kernel_id in kernels:
            assert api.post(f"api/kernels/{kernel_id}/restart").status_code == 200

    saved = json.loads((lab.root / path).read_text())
    [out] = saved["cells"][0]["outputs"]
    assert "application/vnd.jupyter.widget-view+json" not in out["data"]
    assert "Unit 2 of" in "".join(out["data"]["text/markdown"])

    page.goto(lab.lab_url(path))
    kernel_idle(page)
    report_without_widget(page, "Unit 2 of")
    assert page.get_by_text("Error displaying widget").count() == 0


def visible_text(page: Any, text: str) -> bool:
    """Whether any element that shows `text` is visible (hidden fallbacks do not count)."""
    return bool(
        page.evaluate(
            """text => [...document.querySelectorAll('.jp-OutputArea-output *')].some(
                el => el.childElementCount === 0 && el.textContent.includes(text)
                    && el.offsetParent !== null)""",
            text,
        )
    )


def test_a_notebook_saved_while_its_task_ran_shows_the_task_from_the_server_after_a_restart(
    lab: LabServer, page: Any
) -> None:
    query = "saved-running units=30 delay=0.25"
    path = lab.notebook("running.ipynb", f"{IMPORT}\ntask = research({query!r})")
    open_notebook(page, lab, path)
    run_first_cell(page)
    widget_badge(page, "running").wait_for()  # the kernel's live widget
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.jp-mod-current.jp-mod-dirty')")
    page.locator(".jp-NotebookPanel-toolbar [data-jp-item-name='restart'] button").click()
    page.locator(".jp-Dialog .jp-mod-accept").click()
    kernel_idle(page)
    with lab.api() as api:
        status = api.get("api/deepresearch/tasks").json()["tasks"][0]["status"]
        assert status in ("queued", "running")  # saved mid-run; it runs on in the server
    # The open notebook's widget lost its kernel: the server's view of the task takes over.
    page.locator(f"{NOTEBOOK} .jp-DeepResearch-outputServer .jp-DeepResearch-badge").wait_for()
    assert not visible_text(page, "Error displaying widget")

    saved = json.loads((lab.root / path).read_text())
    [out] = saved["cells"][0]["outputs"]
    assert "application/vnd.jupyter.widget-view+json" in out["data"]
    task_id = out["data"]["application/vnd.jupyter-deepresearch.task+json"]["task_id"]

    page.goto(lab.lab_url(path))
    kernel_idle(page)
    output = page.locator(f"{NOTEBOOK} .jp-DeepResearch-outputServer")
    output.locator(".jp-DeepResearch-badge").wait_for()  # the task as the server has it
    shot(page, "lab-output-after-restart.png")
    output.get_by_text("Unit 29 of").wait_for()  # it completed on the server meanwhile
    output.locator(".jp-DeepResearch-badge", has_text="completed").wait_for()
    assert not visible_text(page, "Error displaying widget")
    assert not visible_text(page, "Loading widget")

    # Viewers without the extension or the widget's state show the saved Markdown.
    from nbconvert import HTMLExporter, MarkdownExporter

    html, _ = HTMLExporter().from_filename(str(lab.root / path))
    markdown, _ = MarkdownExporter().from_filename(str(lab.root / path))
    for text in (html, markdown):
        assert task_id in text
        assert "run the cell again to reattach" in text
        assert "Error displaying widget" not in text
    assert "widget-view+json" not in html


def test_palette_launcher_and_magic_start_research(lab: LabServer, page: Any) -> None:
    page.goto(f"{lab.base}lab?reset&token={lab.token}")  # the default layout: a launcher
    panel = open_panel(page)

    # The palette lists the commands under their `deepresearch:` ids.
    page.locator(".jp-LauncherCard").first.wait_for()
    page.keyboard.press("Control+Shift+C")
    page.locator(".lm-CommandPalette-input").fill("research")
    ids = page.locator(".lm-CommandPalette-item[data-command^='deepresearch:']")
    ids.first.wait_for()
    commands = {ids.nth(i).get_attribute("data-command") for i in range(ids.count())}
    assert {"deepresearch:new-research", "deepresearch:open-panel"} <= commands
    page.keyboard.press("Escape")

    # The launcher's card asks for the question and starts the research.
    page.locator(".jp-LauncherCard", has_text="Research").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill("launcher units=2 delay=0.05")
    dialog.get_by_role("button", name="OK").click()
    task_row(panel, "launcher units=2").locator(".jp-DeepResearch-badge").wait_for()

    # `%research` with a question mark starts it, even in the cell that loads it; without a
    # question it prints its usage.
    path = lab.notebook(
        "magic.ipynb",
        "%load_ext jupyter_deepresearch.kernel_helpers\n%research How do generators work?",
        "%research",
    )
    open_notebook(page, lab, path)
    page.locator(f"{NOTEBOOK} .jp-Cell .cm-content").first.click()
    for _ in range(2):
        page.keyboard.press("Shift+Enter")
    cells = page.locator(f"{NOTEBOOK} .jp-Cell")
    # The cell's own output area (the widget's report is an output area inside it).
    report = cells.nth(0).locator(".jp-Cell-outputArea")
    report.filter(has_text="Unit 3 of 'How do generators work?'").wait_for()
    assert "not found" not in report.inner_text()
    usage = cells.nth(1).locator(".jp-Cell-outputArea")
    usage.get_by_text("UsageError: %research needs a question").wait_for()
    task_row(open_panel(page), "How do generators work?").wait_for()  # listed once
