"""Knowledge chunking: sizes, structure and overlap (``knowledge/chunking.py``)."""

from __future__ import annotations

import itertools

from avatarium.knowledge.chunking import MAX_CHARS, OVERLAP_CHARS, chunk_text

SENTENCE = "The Velmora plant assembles every kettle between Monday and Friday. "


def test_short_text_is_one_chunk() -> None:
    assert chunk_text("## Returns\n\nWithin 45 days.") == ["## Returns\n\nWithin 45 days."]


def test_chunks_are_full_and_never_too_long() -> None:
    text = "\n\n".join(SENTENCE * 5 for _ in range(40))
    chunks = chunk_text(text)
    assert all(len(chunk) <= MAX_CHARS for chunk in chunks)
    # Packed sentence by sentence: all but the last chunk are nearly full.
    assert all(len(chunk) > MAX_CHARS - len(SENTENCE) - 2 for chunk in chunks[:-1])
    assert "".join(chunks).count("Velmora") >= 200


def test_a_cut_inside_a_section_repeats_the_end_of_the_previous_chunk() -> None:
    chunks = chunk_text(SENTENCE * 30)
    for before, after in itertools.pairwise(chunks):
        overlap = after[: OVERLAP_CHARS // 2]
        assert overlap in before[-OVERLAP_CHARS:], (before[-OVERLAP_CHARS:], after[:80])


def test_a_heading_starts_a_new_chunk_once_the_current_one_is_half_full() -> None:
    body = SENTENCE * 7  # about 480 characters
    chunks = chunk_text(f"## Shipping\n\n{body}\n\n## Warranty\n\nTwo years on every kettle.")
    assert len(chunks) == 2
    assert chunks[1] == "## Warranty\n\nTwo years on every kettle."
    small = chunk_text("## Shipping\n\nFive days.\n\n## Warranty\n\nTwo years.")
    assert small == ["## Shipping\n\nFive days.\n\n## Warranty\n\nTwo years."]


def test_a_sentence_longer_than_a_chunk_is_cut_between_words() -> None:
    words = " ".join(f"word{i}" for i in range(400))
    chunks = chunk_text(words)
    assert all(len(chunk) <= MAX_CHARS for chunk in chunks)
    joined = " ".join(chunks)
    assert all(f"word{i}" in joined for i in range(400))
    assert not any(chunk.endswith("wor") for chunk in chunks)
