"""Cutting knowledge text into retrievable chunks along its own structure.

Paragraphs (blank-line separated; a Markdown heading starts a new one) are packed into
chunks of at most ``MAX_CHARS``; a paragraph longer than that is cut at sentence ends, then
at spaces. Each chunk after the first in a run repeats the end of the one before
(``OVERLAP_CHARS``), so a fact that straddles a cut is still whole somewhere.
"""

from __future__ import annotations

import re

MAX_CHARS = 800
OVERLAP_CHARS = 120
_PARAGRAPHS = re.compile(r"\n\s*\n|\n(?=#{1,6}\s)")
_SENTENCES = re.compile(r"(?<=[.!?])\s+")


def _pieces(paragraph: str) -> list[str]:
    if len(paragraph) <= MAX_CHARS:
        return [paragraph]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCES.split(paragraph):
        while len(sentence) > MAX_CHARS:  # no sentence end in reach: cut at a space
            cut = sentence.rfind(" ", 0, MAX_CHARS)
            cut = cut if cut > 0 else MAX_CHARS
            if current:
                pieces.append(current)
                current = ""
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if current and len(current) + 1 + len(sentence) > MAX_CHARS:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


def chunk_text(text: str) -> list[str]:
    """The chunks of ``text``, in order."""
    paragraphs = [p.strip() for p in _PARAGRAPHS.split(text.replace("\r\n", "\n"))]
    pieces = [piece for p in paragraphs if p for piece in _pieces(p)]
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 2 + len(piece) > MAX_CHARS:
            chunks.append(current)
            tail = current[-OVERLAP_CHARS:]
            tail = tail[tail.find(" ") + 1 :] if " " in tail else ""
            current = f"{tail} {piece}".strip() if tail else piece
            if len(current) > MAX_CHARS:
                current = piece
        else:
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks
