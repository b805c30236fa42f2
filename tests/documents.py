"""Documents made by the tests and benchmarks: PDF, DOCX and HTML files holding given
paragraphs, so every format goes through the real extraction path."""

from __future__ import annotations

import io
import textwrap

LINE_CHARS = 90
LINES_PER_PAGE = 50


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(sections: list[tuple[str, list[str]]], *, max_pages: int | None = None) -> bytes:
    """A PDF with ``(heading, paragraphs)`` sections in Helvetica, wrapped to the page, a
    blank line between paragraphs; cut after ``max_pages`` full pages. Written by hand
    (objects, content streams, cross-reference table), as the format describes."""
    lines: list[str] = []
    for heading, paragraphs in sections:
        lines += [heading, ""]
        for paragraph in paragraphs:
            lines += [*textwrap.wrap(paragraph, LINE_CHARS), ""]
    pages = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)]
    pages = pages[:max_pages] if max_pages is not None else pages
    objects: list[bytes] = []
    page_ids = []
    font_id = 3
    next_id = 4
    contents: list[tuple[int, int, bytes]] = []
    for page in pages:
        ops = ["BT", "/F1 11 Tf", "14 TL", "50 790 Td"]
        ops += [f"({_pdf_escape(line)}) Tj T*" for line in page]
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1", "replace")
        contents.append((next_id, next_id + 1, stream))
        page_ids.append(next_id)
        next_id += 2
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(page_ids)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for _page_id, content_id, stream in contents:
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents {content_id} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream
            + b"\nendstream"
        )  # fmt: skip
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def docx_bytes(sections: list[tuple[str, list[str]]]) -> bytes:
    """A DOCX with Heading 1 sections and their paragraphs (python-docx)."""
    from docx import Document

    document = Document()
    for heading, paragraphs in sections:
        document.add_heading(heading, level=1)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def html_bytes(sections: list[tuple[str, list[str]]], title: str = "Document") -> bytes:
    """An HTML page with a navigation bar, a script and the sections as h2 and p."""
    body = "".join(
        f"<h2>{heading}</h2>" + "".join(f"<p>{p}</p>" for p in paragraphs)
        for heading, paragraphs in sections
    )
    return (
        f"<!doctype html><html><head><title>{title}</title>"
        "<style>p{margin:0}</style><script>var tracking = 'ignore me';</script></head>"
        f"<body><nav><a href='/'>Home</a></nav><main>{body}</main></body></html>"
    ).encode()


def markdown_bytes(sections: list[tuple[str, list[str]]]) -> bytes:
    return "\n\n".join(
        f"## {heading}\n\n" + "\n\n".join(paragraphs) for heading, paragraphs in sections
    ).encode()


def text_bytes(sections: list[tuple[str, list[str]]]) -> bytes:
    return "\n\n".join(
        f"{heading}\n\n" + "\n\n".join(paragraphs) for heading, paragraphs in sections
    ).encode()
