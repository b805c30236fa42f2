"""Lip-sync timings from eSpeak events: phonemes to visemes, word events to words.

Visemes use the common 15-shape set (sil, PP, FF, TH, DD, kk, CH, SS, nn, RR, aa, E, ih, oh,
ou) that avatar rigs (Oculus/ARKit-style blend shapes) understand.
"""

from __future__ import annotations

import re
from typing import Any

VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")

# eSpeak mnemonics, longest first so that "tS" wins over "t".
_PREFIXES: list[tuple[str, str]] = [
    ("tS", "CH"),
    ("dZ", "CH"),
    ("S", "CH"),
    ("Z", "CH"),
    ("p", "PP"),
    ("b", "PP"),
    ("m", "PP"),
    ("f", "FF"),
    ("v", "FF"),
    ("T", "TH"),
    ("D", "TH"),
    ("t", "DD"),
    ("d", "DD"),
    ("k", "kk"),
    ("g", "kk"),
    ("N", "kk"),
    ("x", "kk"),
    ("h", "kk"),
    ("s", "SS"),
    ("z", "SS"),
    ("n", "nn"),
    ("l", "nn"),
    ("L", "nn"),
    ("r", "RR"),
    ("R", "RR"),
    ("a", "aa"),
    ("A", "aa"),
    ("V", "aa"),
    ("@", "aa"),
    ("3", "aa"),
    ("e", "E"),
    ("E", "E"),
    ("i", "ih"),
    ("I", "ih"),
    ("j", "ih"),
    ("y", "ih"),
    ("o", "oh"),
    ("O", "oh"),
    ("u", "ou"),
    ("U", "ou"),
    ("w", "ou"),
]


def viseme_for(phoneme: str) -> str:
    """The viseme of an eSpeak phoneme mnemonic (stress and length marks ignored)."""
    core = phoneme.lstrip("',").rstrip(":;")
    if not core or core.startswith("_"):
        return "sil"
    for prefix, viseme in _PREFIXES:
        if core.startswith(prefix):
            return viseme
    return "sil"


def visemes_from(phonemes: list[tuple[int, str]], total_ms: int) -> list[dict[str, Any]]:
    """Viseme spans from timed phonemes, merging neighbours with the same shape."""
    spans: list[dict[str, Any]] = []
    for index, (start, name) in enumerate(phonemes):
        end = phonemes[index + 1][0] if index + 1 < len(phonemes) else total_ms
        end = max(end, start)
        shape = viseme_for(name)
        if spans and spans[-1]["viseme"] == shape:
            spans[-1]["duration_ms"] = end - spans[-1]["time_ms"]
            continue
        if end > start:
            spans.append({"time_ms": start, "duration_ms": end - start, "viseme": shape})
    return spans


# A word of the text: letters and digits, with apostrophes inside (I'm, don't).
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


def words_from(text: str, words: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    """``{time_ms, text}`` per word, in order; eSpeak gives 1-based character positions.

    eSpeak's positions are not always exact: it reports "I'm" as "I", and after some word
    pairs ("for a while") a position inside the previous word. So each event is matched to
    the next word of the text that it overlaps or directly precedes, and named by that whole
    word; an event that matches none keeps the characters it points at.
    """
    spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    result: list[dict[str, Any]] = []
    following = 0  # the first word of the text not yet named
    for time_ms, position, length in words:
        start = position - 1
        index = following
        while index < len(spans) and spans[index][1] <= start:
            index += 1
        if index < len(spans) and spans[index][0] <= start + length:
            first, last = spans[index]
            result.append({"time_ms": time_ms, "text": text[first:last]})
            following = index + 1
            continue
        piece = text[start : start + length].strip()
        if piece:
            result.append({"time_ms": time_ms, "text": piece})
    return result
