"""Text out of uploaded documents, keeping the structure chunking follows.

Every format comes out as plain text with blank lines between paragraphs and Markdown
``#`` headings, which is what :func:`avatarium.knowledge.chunking.chunk_text` cuts along.
The libraries: pypdf (BSD), python-docx (MIT), Beautiful Soup (MIT) on the standard
library's HTML parser. A file that cannot be read raises :class:`ExtractionError` with a
sentence meant for the person who uploaded it.
"""

from __future__ import annotations

import io
import re
import zipfile
from enum import StrEnum

MAX_PDF_PAGES = 50
# What a DOCX may unpack to: its XML is parsed whole, so a small zip must not expand
# into gigabytes.
MAX_UNPACKED_BYTES = 100 * 1024 * 1024
_HEADING_MAX_CHARS = 80
_SENTENCE_END = (".", "!", "?", ":", ";", ",")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")


class DocumentFormat(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    HTML = "html"
    MARKDOWN = "markdown"
    TEXT = "text"


class ExtractionError(Exception):
    """The document cannot be read; the message says why, for the uploader."""


_BY_EXTENSION = {
    ".pdf": DocumentFormat.PDF, ".docx": DocumentFormat.DOCX, ".html": DocumentFormat.HTML,
    ".htm": DocumentFormat.HTML, ".md": DocumentFormat.MARKDOWN,
    ".markdown": DocumentFormat.MARKDOWN, ".txt": DocumentFormat.TEXT,
}  # fmt: skip
_BY_TYPE = {
    "application/pdf": DocumentFormat.PDF,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (
        DocumentFormat.DOCX
    ),
    "text/html": DocumentFormat.HTML,
    "text/markdown": DocumentFormat.MARKDOWN,
    "text/x-markdown": DocumentFormat.MARKDOWN,
    "text/plain": DocumentFormat.TEXT,
}
SUPPORTED = "PDF, DOCX, HTML, Markdown or plain text"


def detect_format(filename: str, content_type: str | None, head: bytes) -> DocumentFormat | None:
    """The document's format from its first bytes, its name and its declared type; None
    when it is none we read. The bytes win: a PDF is a PDF whatever it is called, and a
    file named ``.pdf`` that is not one is refused at once."""
    lowered = filename.lower()
    extension = lowered[lowered.rfind(".") :] if "." in lowered else ""
    declared = _BY_EXTENSION.get(extension) or _BY_TYPE.get(
        (content_type or "").split(";")[0].strip().lower()
    )
    if head.startswith(b"%PDF-"):
        return DocumentFormat.PDF
    if head.startswith(b"PK\x03\x04"):
        return DocumentFormat.DOCX if declared is DocumentFormat.DOCX else None
    if declared in (DocumentFormat.PDF, DocumentFormat.DOCX):
        return None  # named like a binary format it is not
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None  # binary, not text
    return declared


def extract(data: bytes, fmt: DocumentFormat) -> str:
    """The text of a document, paragraphs separated by blank lines."""
    if fmt is DocumentFormat.PDF:
        text = _pdf(data)
    elif fmt is DocumentFormat.DOCX:
        text = _docx(data)
    elif fmt is DocumentFormat.HTML:
        text = _html(_decode(data))
    else:
        text = _decode(data)
    text = _tidy(text)
    if not text:
        raise ExtractionError(
            "No text was found in the document (a scanned PDF needs text recognition first)."
        )
    return text


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExtractionError(
            f"The file is not UTF-8 text (byte {exc.start} cannot be read); save it as UTF-8."
        ) from None


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ExtractionError("The PDF is encrypted; upload a copy without a password.")
        pages = len(reader.pages)
        if pages > MAX_PDF_PAGES:
            raise ExtractionError(
                f"The PDF has {pages} pages; at most {MAX_PDF_PAGES} are accepted. "
                "Split it into several documents."
            )
        texts = [_pdf_page(page.extract_text() or "") for page in reader.pages]
    except ExtractionError:
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ExtractionError(f"The PDF could not be read: {_short(exc)}.") from None
    return "\n\n".join(t for t in texts if t)


def _pdf_page(text: str) -> str:
    """A page's lines joined into paragraphs: a line break inside a sentence is only the
    layout's, a blank line or a short line without punctuation (a heading) is a break."""
    paragraphs: list[str] = []
    current: list[str] = []

    def close() -> None:
        if current:
            paragraphs.append(" ".join(current))
            current.clear()

    lines = [_SPACES.sub(" ", raw).strip() for raw in text.splitlines()]
    # A sentence that ends well short of the page's measure ends its paragraph.
    short = 0.75 * max((len(line) for line in lines), default=0)
    for line in lines:
        if not line:
            close()
            continue
        if (
            len(line) <= _HEADING_MAX_CHARS
            and not line.endswith(_SENTENCE_END)
            and line[:1].isupper()
            and (not current or current[-1].endswith(_SENTENCE_END[:3]))
        ):
            close()
            paragraphs.append(f"## {line}")
            continue
        if current and current[-1].endswith("-") and line[:1].islower():
            current[-1] = current[-1][:-1] + line  # a word hyphenated across lines
        else:
            current.append(line)
        if line.endswith(_SENTENCE_END[:3]) and len(line) < short:
            close()
    close()
    return "\n\n".join(paragraphs)


def _docx(data: bytes) -> str:
    from docx import Document
    from docx.opc.exceptions import PackageNotFoundError

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED_BYTES:
                raise ExtractionError("The DOCX unpacks to more than 100 MB.")
        document = Document(io.BytesIO(data))
    except ExtractionError:
        raise
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError) as exc:
        raise ExtractionError(f"The DOCX could not be read: {_short(exc)}.") from None
    blocks: list[str] = []
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        level = _heading_level(style)
        blocks.append(f"{'#' * level} {text}" if level else text)
    for table in document.tables:
        for row in table.rows:
            cells = [cell.text.strip() for cell in row.cells]
            if any(cells):
                blocks.append(" | ".join(cells))
    return "\n\n".join(blocks)


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style)
    return min(6, int(match.group(1))) if match else 0


_BLOCKS = ["p", "div", "li", "pre", "blockquote", "tr", "dt", "dd", "section", "article",
           "table", "ul", "ol", "br", "header", "main", "aside", "figcaption"]  # fmt: skip


def _html(markup: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg", "head", "nav"]):
        tag.decompose()
    for level in range(1, 7):
        for tag in soup.find_all(f"h{level}"):
            tag.insert_before(f"\n\n{'#' * level} ")
            tag.insert_after("\n\n")
    for tag in soup.find_all(_BLOCKS):
        tag.insert_after("\n\n")
    for tag in soup.find_all(["td", "th"]):
        tag.insert_after(" | ")
    return soup.get_text()


def _tidy(text: str) -> str:
    """Runs of spaces to one, lines inside a paragraph joined, paragraphs by blank lines."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [_SPACES.sub(" ", line).strip() for line in block.split("\n")]
        joined = "\n".join(line for line in lines if line).strip(" |")
        if joined:
            paragraphs.append(joined)
    return "\n\n".join(paragraphs)


def _short(exc: Exception) -> str:
    message = str(exc).strip().rstrip(".") or type(exc).__name__
    return message[:200]
