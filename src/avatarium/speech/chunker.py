"""Cutting streamed reply text into speakable chunks, so speech can start at the first sentence.

Text arrives in arbitrary pieces (model tokens). A chunk ends at a sentence end that the text
after it confirms: terminal punctuation (``. ! ? …`` and the full-width CJK marks),
optionally followed by closing quotes or brackets, then whitespace and a character that may
start a sentence. Waiting for that next character is what keeps "3.5", "Dr. Smith",
"e.g. this" and "Well... no" from ending a sentence. A chunk also ends at the first clause
boundary (``, ; : —``) past a soft length limit, if that comes first; past a hard limit with
neither, it is cut at the last space, never inside a word (a single word longer than the
limit is kept whole).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

SENTENCE_END = ".!?…"
# The CJK full stop, exclamation and question marks end a sentence with no space after them.
CJK_SENTENCE_END = "\u3002\uff01\uff1f"
CLOSERS = "\"'\u201d\u2019\u00bb)]}"  # straight and curly closing quotes, brackets
CLAUSE_END = ",;:\u2014\u2013"  # and the em and en dashes

# Words that end in a period without ending a sentence (compared lower-cased, without the dot).
ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e",
        "no", "fig", "approx", "inc", "ltd", "co", "corp", "dept", "est", "vol", "ca", "cf",
        "a.m", "p.m", "u.s", "u.k", "z.b", "bzw", "usw", "sra", "mme", "mlle",
    }
)  # fmt: skip

_WORD_BEFORE = re.compile(r"(\S+)$")

SOFT_LIMIT = 160  # past this, a clause boundary is good enough
HARD_LIMIT = 260  # past this, any space is
# The first chunk decides when the avatar starts to speak, so it is cut sooner; by the time
# it has been heard, the model has written well past the next sentence end.
FIRST_SOFT_LIMIT = 24
FIRST_HARD_LIMIT = 56


class SentenceChunker:
    """Feed text as it streams; take chunks as soon as they are known to be complete."""

    def __init__(
        self,
        soft_limit: int = SOFT_LIMIT,
        hard_limit: int = HARD_LIMIT,
        first_soft_limit: int = FIRST_SOFT_LIMIT,
        first_hard_limit: int = FIRST_HARD_LIMIT,
    ) -> None:
        self._buffer = ""
        self._limits = (soft_limit, hard_limit)
        self._soft, self._hard = first_soft_limit, first_hard_limit

    def feed(self, text: str) -> list[str]:
        """Add streamed text; return the chunks it completed (possibly none)."""
        self._buffer += text
        chunks: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                return chunks
            chunk, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if chunk:
                chunks.append(chunk)
                self._soft, self._hard = self._limits

    def flush(self) -> list[str]:
        """The rest of the text once the stream ended (at most one chunk, or none)."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    def _find_cut(self) -> int | None:
        # Every rule depends only on the text before the cut (and the character after a
        # sentence end), so the chunks are the same however the text was split into pieces.
        text = self._buffer
        sentence = next(_sentence_ends(text), None)
        clause = _clause_boundary(text, self._soft)
        candidates = [cut for cut in (sentence, clause) if cut is not None]
        cut = min(candidates) if candidates else None
        if cut is not None and cut <= self._hard:
            return cut
        if len(text) > self._hard:
            # Long, with no sentence end or clause boundary: the last space within the limit
            # (a single word longer than the limit stays whole).
            return _last_space(text, self._hard) or cut
        return None


def _sentence_ends(text: str) -> Iterator[int]:
    """Positions just after each confirmed sentence end in ``text``."""
    length = len(text)
    i = 0
    while i < length:
        char = text[i]
        if char in CJK_SENTENCE_END:
            j = i + 1
            while j < length and (text[j] in CJK_SENTENCE_END or text[j] in CLOSERS):
                j += 1
            if j < length:  # something follows, so the punctuation run is complete
                yield j
            i = j
            continue
        if char not in SENTENCE_END:
            i += 1
            continue
        j = i + 1
        while j < length and (text[j] in SENTENCE_END or text[j] in CLOSERS):
            j += 1  # "?!", "...", '."' belong to the same end
        k = j
        while k < length and text[k].isspace():
            k += 1
        if k in (j, length):
            # No space after it ("3.5", "e.g.x"), or nothing after the space yet: unconfirmed.
            i = j
            continue
        if _starts_sentence(text[k]) and not _is_abbreviation(text[:i], text[i:j]):
            yield j
        i = k


def _starts_sentence(char: str) -> bool:
    # A lower-case letter continues the sentence ("e.g. this", "Well... maybe"); anything
    # else (capitals, digits, quotes, emoji, letters of scripts without case) may start one.
    return not char.islower()


def _is_abbreviation(before: str, punctuation: str) -> bool:
    if not punctuation.startswith("."):
        return False
    if punctuation.startswith("..") or punctuation.startswith("…"):
        return False  # an ellipsis followed by a capital is a sentence end
    match = _WORD_BEFORE.search(before)
    if match is None:
        return False
    line_start = before.rfind("\n", 0, match.start()) + 1
    if match.group(1).isdigit() and not before[line_start : match.start()].strip():
        return True  # a list marker ("1. First...") at the start of a line or chunk
    word = match.group(1).lstrip("\"'\u201c\u2018\u00ab([{").lower()
    if len(word) == 1 and word.isalpha():
        return True  # an initial: "J. R. R. Tolkien"
    return word in ABBREVIATIONS


def _clause_boundary(text: str, start: int) -> int | None:
    """The first space after a clause mark (``, ; : —``) at or past ``start``."""
    for i in range(max(start, 1), len(text)):
        if text[i].isspace() and text[i - 1] in CLAUSE_END:
            return i
    return None


def _last_space(text: str, limit: int) -> int | None:
    """The last space within ``limit`` characters (not at the very start)."""
    for i in range(min(limit, len(text) - 1), 0, -1):
        if text[i].isspace():
            return i
    return None
