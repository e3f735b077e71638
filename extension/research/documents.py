"""Plain text of the binary document formats a source folder may hold: PDF pages and Word files.

Both formats are untrusted input parsed by third-party libraries (`pypdf`, `python-docx`) that
raise a wide variety of exceptions on damaged files; every failure becomes `UnreadableDocument`
with a reason fit to show the user.
"""

from __future__ import annotations

import io
import zipfile

import docx
import pypdf
from docx.table import Table
from pypdf.errors import DependencyError, FileNotDecryptedError

from .quiet import quiet_logger


class UnreadableDocument(Exception):
    """A PDF or Word file whose text cannot be read; the message says why."""


def pdf_pages(data: bytes) -> list[str]:
    """The text of each page of a PDF, in page order (page 1 first)."""
    try:
        with quiet_logger("pypdf"):
            reader = pypdf.PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not _opens_without_password(reader):
                raise UnreadableDocument("it is encrypted")
            return [page.extract_text() or "" for page in reader.pages]
    except UnreadableDocument:
        raise
    except (FileNotDecryptedError, DependencyError):
        raise UnreadableDocument("it is encrypted") from None
    except RecursionError:
        raise UnreadableDocument("it cannot be parsed (RecursionError)") from None
    # A damaged file can make pypdf fail anywhere (PdfReadError, KeyError, TypeError, ...).
    except Exception as exc:
        raise UnreadableDocument(f"it cannot be parsed as PDF ({type(exc).__name__})") from None


def _opens_without_password(reader: pypdf.PdfReader) -> bool:
    # Many PDFs are encrypted only against editing, with an empty password for reading.
    try:
        return bool(reader.decrypt(""))
    except (FileNotDecryptedError, DependencyError, NotImplementedError):
        return False


def docx_text(data: bytes, max_unpacked: int) -> str:
    """A Word document's text, one line per paragraph (tables row by row, cells joined by
    " | "), headings marked `#` as in Markdown; refused if its parts unpack to more than
    `max_unpacked` bytes (a zip bomb)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > max_unpacked:
            raise UnreadableDocument(f"it unpacks to more than {max_unpacked} bytes")
        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                lines.extend(
                    " | ".join(cell.text.strip() for cell in row.cells) for row in block.rows
                )
                lines.append("")
                continue
            text = block.text.strip()
            if not text:
                continue
            style = block.style.name if block.style is not None else ""
            if style == "Title" or style.startswith("Heading"):
                lines.extend(["", f"# {text}", ""])
            else:
                lines.extend([text, ""])
        return "\n".join(lines)
    except UnreadableDocument:
        raise
    except RecursionError:
        raise UnreadableDocument("it cannot be parsed (RecursionError)") from None
    except Exception as exc:  # bad zip, missing parts, malformed XML: anything a damaged file does
        raise UnreadableDocument(
            f"it cannot be parsed as a Word document ({type(exc).__name__})"
        ) from None
