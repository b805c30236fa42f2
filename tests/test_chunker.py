"""The sentence chunker on tricky text, fed whole and fed a few characters at a time."""

from __future__ import annotations

import pytest

from avatarium.speech.chunker import (
    FIRST_HARD_LIMIT,
    FIRST_SOFT_LIMIT,
    HARD_LIMIT,
    SOFT_LIMIT,
    SentenceChunker,
)


def chunks(text: str, step: int | None = None, *, eager_first: bool = False) -> list[str]:
    """The chunks of ``text`` fed ``step`` characters at a time. Unless ``eager_first``, the
    first chunk follows the same rules as the rest, so sentence rules can be seen alone."""
    if eager_first:
        chunker = SentenceChunker()
    else:
        chunker = SentenceChunker(first_soft_limit=SOFT_LIMIT, first_hard_limit=HARD_LIMIT)
    out: list[str] = []
    step = step or max(len(text), 1)
    for start in range(0, len(text), step):
        out += chunker.feed(text[start : start + step])
    return out + chunker.flush()


CASES = [
    (
        "Dr. Smith met Mrs. Jones at 3.5 p.m. on St. Mary's road. They talked.",
        ["Dr. Smith met Mrs. Jones at 3.5 p.m. on St. Mary's road.", "They talked."],
    ),
    ("It costs $3.50, i.e. cheap. Pi is 3.14159! Really?", [
        "It costs $3.50, i.e. cheap.", "Pi is 3.14159!", "Really?",
    ]),
    ("Well... maybe. Wait... No! Are you sure?! Yes.", [
        "Well... maybe.", "Wait...", "No!", "Are you sure?!", "Yes.",
    ]),
    ("Wait\u2026 I know. Then\u2026 nothing.", ["Wait\u2026", "I know.", "Then\u2026 nothing."]),
    ("Great! \U0001f600 See you soon \U0001f44b\U0001f3fd. Bye \U0001f469\u200d\U0001f4bb!", [
        "Great!", "\U0001f600 See you soon \U0001f44b\U0001f3fd.", "Bye \U0001f469\u200d\U0001f4bb!",
    ]),
    ('He said "Stop." Then (quietly) he left.', ['He said "Stop."', "Then (quietly) he left."]),
    ("J. R. R. Tolkien wrote it. E.g. this one.", ["J. R. R. Tolkien wrote it.", "E.g. this one."]),
    ("Guten Tag. Wie geht es z.B. Ihnen? Gut.", [
        "Guten Tag.", "Wie geht es z.B. Ihnen?", "Gut.",
    ]),
    ("¿Qué tal? Muy bien, gracias. ¡Adiós!", ["¿Qué tal?", "Muy bien, gracias.", "¡Adiós!"]),
    ("Привет. Как дела? Хорошо.", ["Привет.", "Как дела?", "Хорошо."]),
    ("こんにちは。元気ですか？はい、元気です。", ["こんにちは。", "元気ですか？", "はい、元気です。"]),
    ("Version 2.0.1 is out.Really.", ["Version 2.0.1 is out.Really."]),
    ("", []),
    ("   ", []),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CASES)
@pytest.mark.parametrize("step", [None, 1, 3, 7])
def test_sentences(text: str, expected: list[str], step: int | None) -> None:
    assert chunks(text, step) == expected


def assert_words_kept(text: str, result: list[str]) -> None:
    """Chunks are cut only at spaces: joined with spaces they give the words back."""
    assert " ".join(result).split() == text.split()


@pytest.mark.parametrize("step", [None, 1, 5])
def test_a_long_sentence_without_punctuation_is_cut_between_words(step: int | None) -> None:
    words = [f"word{i}" for i in range(100)]
    text = " ".join(words)  # about 600 characters, no punctuation at all
    assert len(text) >= 600
    result = chunks(text, step)
    assert len(result) >= 3
    assert all(len(chunk) <= HARD_LIMIT for chunk in result)
    assert_words_kept(text, result)


def test_a_long_sentence_is_cut_at_a_clause_boundary_first() -> None:
    clause = "and then the avatar kept talking about nothing in particular"
    text = f"{clause}, {clause}, {clause}, {clause} and it stopped."
    result = chunks(text, 4)
    assert len(result) >= 2
    assert all(chunk.endswith((",", ".")) for chunk in result)
    assert_words_kept(text, result)


def test_a_single_huge_word_is_never_split() -> None:
    word = "x" * 700
    assert chunks(f"{word} done.", 9) == [f"{word} done."]


def test_chunks_are_released_as_soon_as_a_sentence_is_confirmed() -> None:
    chunker = SentenceChunker()
    assert chunker.feed("Hello there.") == []  # "." could still be "3.5" or "Dr."
    assert chunker.feed(" ") == []  # the next word might be lower case
    assert chunker.feed("How") == ["Hello there."]
    assert chunker.feed(" are you?") == []
    assert chunker.flush() == ["How are you?"]
    assert chunker.flush() == []


@pytest.mark.parametrize("step", [None, 1, 4])
def test_the_first_chunk_is_cut_sooner_so_speech_starts_sooner(step: int | None) -> None:
    text = (
        "The sky is blue because of a process called Rayleigh scattering, where sunlight "
        "bounces off the molecules of the air. Blue light scatters the most."
    )
    result = chunks(text, step, eager_first=True)
    assert len(result[0]) <= FIRST_HARD_LIMIT
    assert result[-1] == "Blue light scatters the most."
    assert_words_kept(text, result)
    # A clause boundary past the first soft limit is preferred to a bare space.
    clause = chunks("Once upon a time, in a land far away, lived a robot. It sang.", step,
                    eager_first=True)  # fmt: skip
    assert clause[0] == "Once upon a time, in a land far away,"
    assert len(clause[0]) >= FIRST_SOFT_LIMIT
    # A short first sentence is still a whole sentence.
    assert chunks("Hi there! How are you today, my friend?", step, eager_first=True) == [
        "Hi there!",
        "How are you today, my friend?",
    ]


def test_the_chunks_do_not_depend_on_how_the_text_was_split() -> None:
    import random

    rng = random.Random(7)
    sentences = [case[0] for case in CASES] + [
        "and so it went on, for a long while, with nobody saying much of anything at all "
        "until the evening came; then everyone went home — tired but happy"
    ]
    for _ in range(200):
        text = " ".join(rng.sample(sentences, 4))
        expected = chunks(text, eager_first=True)
        pieces, position = [], 0
        while position < len(text):
            size = rng.randint(1, 12)
            pieces.append(text[position : position + size])
            position += size
        chunker = SentenceChunker()
        got = [chunk for piece in pieces for chunk in chunker.feed(piece)] + chunker.flush()
        assert got == expected, text
