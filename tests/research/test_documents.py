"""PDF and Word files in source folders: searched by page and heading, unreadable ones skipped
with a message naming them, and every link opens the right file (and PDF page)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject
from research_fakes import FAST

from jupyter_deepresearch.extension.models import SearchSettings
from jupyter_deepresearch.extension.research import sources
from jupyter_deepresearch.extension.research.local_search import LocalSearch

pytestmark = pytest.mark.anyio


def make_pdf(pages: list[str], password: str | None = None) -> bytes:
    """A PDF whose pages show these texts (one line each) in Helvetica."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_ref = writer._add_object(font)
    for text in pages:
        page = writer.add_blank_page(width=612, height=792)
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})}
        )
    if password is not None:
        writer.encrypt(user_password=password, owner_password=password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(blocks: list[tuple[str, str]]) -> bytes:
    """A Word document of ("heading" | "para" | "table", text) blocks."""
    document = docx.Document()
    for kind, text in blocks:
        if kind == "heading":
            document.add_heading(text, level=1)
        elif kind == "table":
            cells = text.split("|")
            table = document.add_table(rows=1, cols=len(cells))
            for cell, value in zip(table.rows[0].cells, cells, strict=True):
                cell.text = value
        else:
            document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


PAGES = [
    "Introduction to the walrus survey of the northern coast.",
    "The narwhal tusk measurements were taken at dawn by the quokka team.",
    "Appendix: the capybara budget for the next season.",
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "papers").mkdir(parents=True)
    return root


def test_pdf_passages_are_located_by_page(root: Path) -> None:
    data = make_pdf(PAGES)
    passages = sources.file_passages("papers/survey.pdf", data)
    by_page = {p["id"]: p["text"] for p in passages}
    assert list(by_page) == [f"file:papers/survey.pdf#page={n}" for n in (1, 2, 3)]
    assert "narwhal tusk" in by_page["file:papers/survey.pdf#page=2"]
    assert passages[1]["title"] == "survey.pdf, page 2"


def test_docx_passages_follow_headings_and_tables() -> None:
    data = make_docx(
        [
            ("heading", "Deployment"),
            ("para", "Ship the wombat service with the blue-green switch."),
            ("heading", "Costs"),
            ("para", "Each axolotl node costs about forty credits a month."),
            ("table", "node|credits per month|owner"),
        ]
    )
    passages = sources.file_passages("specs/plan.docx", data)
    titles = {p["title"]: p["text"] for p in passages}
    assert "wombat service" in titles["plan.docx: Deployment"]
    assert "axolotl node" in titles["plan.docx: Costs"]
    assert "node | credits per month | owner" in titles["plan.docx: Costs"]
    assert all(p["id"].startswith("file:specs/plan.docx#L") for p in passages)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("locked.pdf", make_pdf(PAGES, password="s3cret"), "it is encrypted"),
        ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R", "cannot be parsed"),
        ("half.pdf", make_pdf(PAGES)[:300], "cannot be parsed"),
        ("broken.docx", b"PK\x03\x04 not really a zip archive", "cannot be parsed"),
        ("empty-zip.docx", b"PK\x05\x06" + b"\0" * 18, "cannot be parsed"),
    ],
)
def test_unreadable_documents_are_skipped_by_name(
    root: Path, name: str, content: bytes, reason: str
) -> None:
    (root / "papers" / name).write_bytes(content)
    (root / "papers" / "good.pdf").write_bytes(make_pdf(PAGES))
    passages, skipped = sources.folder_passages(root / "papers", root, 1_000_000)
    assert [s.path for s in skipped] == [f"papers/{name}"]
    assert reason in skipped[0].reason
    assert {p["id"] for p in passages} == {f"file:papers/good.pdf#page={n}" for n in (1, 2, 3)}


def test_a_pdf_encrypted_only_against_editing_is_read(root: Path) -> None:
    passages = sources.file_passages("papers/open.pdf", make_pdf(PAGES, password=""))
    assert any("narwhal tusk" in p["text"] for p in passages)


def test_docx_zip_bomb_is_skipped(root: Path) -> None:
    data = io.BytesIO(make_docx([("para", "Small and harmless.")]))
    with zipfile.ZipFile(data, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/media/padding.bin", b"\0" * 3_000_000)
    (root / "papers" / "bomb.docx").write_bytes(data.getvalue())
    _, skipped = sources.folder_passages(root / "papers", root, 100_000)
    assert skipped == [sources.Skip("papers/bomb.docx", "it unpacks to more than 2000000 bytes")]


def test_documents_over_the_size_cap_are_skipped(root: Path) -> None:
    (root / "papers" / "big.pdf").write_bytes(make_pdf(PAGES * 20))
    _, skipped = sources.folder_passages(root / "papers", root, 2_000)
    assert skipped == [
        sources.Skip("papers/big.pdf", "it is larger than max_source_file_bytes (2000 bytes)")
    ]


async def test_search_finds_a_pdf_page_and_links_to_it(root: Path, search_cache_dir: Path) -> None:
    (root / "papers" / "survey.pdf").write_bytes(make_pdf(PAGES))
    (root / "papers" / "plan.docx").write_bytes(
        make_docx([("heading", "Budget"), ("para", "The platypus grant pays for the hydrophones.")])
    )
    (root / "papers" / "locked.pdf").write_bytes(make_pdf(PAGES, password="pw"))
    notices: list[str] = []

    async def notice(message: str) -> None:
        notices.append(message)

    settings = SearchSettings(provider="local", sources=("papers",), max_results=5)
    search = LocalSearch(
        settings, root_dir=root, cache_dir=search_cache_dir, options=FAST, notice=notice
    )
    hits = await search.search("narwhal tusk measurements quokka")
    assert hits[0]["id"] == "file:papers/survey.pdf#page=2"
    assert hits[0]["url"] == "papers/survey.pdf#page=2"
    word = await search.search("platypus grant hydrophones")
    assert word[0]["id"].startswith("file:papers/plan.docx#L")
    assert word[0]["url"] == "papers/plan.docx"
    assert notices == ["Skipped papers/locked.pdf: it is encrypted"]
