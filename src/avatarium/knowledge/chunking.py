"""Cutting knowledge text into retrievable chunks along its own structure.

The text is read as paragraphs (blank-line separated; a Markdown heading is a paragraph of
its own) made of sentences. Sentences are packed into chunks of at most ``MAX_CHARS``; a
heading starts a new chunk once the current one is half full (400 characters), so a
section's facts stay with its title; a sentence longer than a chunk is cut at spaces. Each chunk
that continues a run repeats the end of the one before (``OVERLAP_CHARS``), so a fact that
straddles a cut is still whole somewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CHARS = 800
OVERLAP_CHARS = 120
SECTION_BREAK_CHARS = MAX_CHARS // 2
_PARAGRAPHS = re.compile(r"\n\s*\n|\n(?=#{1,6}\s)")
_SENTENCES = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True)
class _Unit:
    text: str
    new_paragraph: bool
    heading: bool


def _units(text: str) -> list[_Unit]:
    units: list[_Unit] = []
    for paragraph in _PARAGRAPHS.split(text.replace("\r\n", "\n")):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        heading = paragraph.startswith("#")
        first = True
        for sentence in _SENTENCES.split(paragraph):
            while len(sentence) > MAX_CHARS:  # no sentence end in reach: cut at a space
                cut = sentence.rfind(" ", 0, MAX_CHARS)
                cut = cut if cut > 0 else MAX_CHARS
                units.append(_Unit(sentence[:cut].strip(), first, heading and first))
                sentence, first = sentence[cut:].strip(), False
            if sentence:
                units.append(_Unit(sentence, first, heading and first))
                first = False
    return units


def _tail(chunk: str) -> str:
    """The end of a chunk to repeat at the start of the next, from a word boundary."""
    tail = chunk[-OVERLAP_CHARS:]
    return tail[tail.find(" ") + 1 :] if " " in tail and len(chunk) > OVERLAP_CHARS else ""


def chunk_text(text: str) -> list[str]:
    """The chunks of ``text``, in order."""
    chunks: list[str] = []
    current = ""
    for unit in _units(text):
        joiner = "\n\n" if unit.new_paragraph else " "
        full = current and len(current) + len(joiner) + len(unit.text) > MAX_CHARS
        section = unit.heading and len(current) >= SECTION_BREAK_CHARS
        if full or section:
            chunks.append(current)
            # A new section starts clean; a cut inside one carries the previous words over.
            tail = "" if unit.heading else _tail(current)
            current = f"{tail}{joiner}{unit.text}" if tail else unit.text
            if len(current) > MAX_CHARS:
                current = unit.text
        else:
            current = f"{current}{joiner}{unit.text}" if current else unit.text
    if current:
        chunks.append(current)
    return chunks
