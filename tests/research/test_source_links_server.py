"""A real server's results link their sources: a PDF page's link is the path the server's
files and contents APIs (what JupyterLab opens) serve, documentation links are absolute."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from test_documents import make_pdf

from dr_testing.waiting import wait_status

pytestmark = pytest.mark.timeout(180)

PAGES = [
    "Contents of the field report.",
    "To calm an anxious axolotl, lower the tank temperature by two degrees.",
]


@pytest.fixture
def dr_config() -> dict[str, Any]:
    return {}  # the built-in pipeline: local search, extractive writer


async def test_a_cited_pdf_page_links_to_a_file_the_server_opens(
    api: Any, jp_fetch: Any, jp_root_dir: Path
) -> None:
    folder = jp_root_dir / "field notes"
    folder.mkdir()
    pdf = make_pdf(PAGES)
    (folder / "axolotl #2.pdf").write_bytes(pdf)
    body = {
        "query": "How do I calm an anxious axolotl in asyncio?",
        "search": {"sources": ["field notes"]},
    }
    created = await api("POST", "tasks", body=body)
    assert created.code == 201, created.body
    task_id = json.loads(created.body)["task_id"]
    done = await wait_status(api, task_id, "completed", "failed", timeout=120)
    assert done["status"] == "completed", done.get("error")
    urls = {s["id"]: s["url"] for s in done["result"]["sources"]}

    link = urls["file:field notes/axolotl #2.pdf#page=2"]
    assert link == "field%20notes/axolotl%20%232.pdf#page=2"
    path = unquote(link.split("#page=")[0])
    served = await jp_fetch("files", *path.split("/"))
    assert served.body == pdf
    model = json.loads(
        (await jp_fetch("api", "contents", *path.split("/"), params={"content": "0"})).body
    )
    assert (model["path"], model["type"]) == ("field notes/axolotl #2.pdf", "file")
    docs = [url for sid, url in urls.items() if sid.startswith(("python:", "pydoc:"))]
    assert docs and all(url.startswith("https://docs.python.org/3.") for url in docs)
