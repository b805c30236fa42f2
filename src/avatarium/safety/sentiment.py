"""Negative sentiment for the ``negative_sentiment`` escalation trigger: VADER, a lexicon
and rule model (``vaderSentiment`` 3.3.2, pinned in ``models.txt``; its lexicon files are
digest-checked when first loaded). About 0.1 ms a message, no threads, English.

A message is negative when VADER's compound score is at or below ``THRESHOLD`` (-0.6):
"This is useless, I'm so angry!" scores -0.90 and "your product is terrible and I hate it"
-0.78, while a mild "I'm not happy with this" (-0.46) does not hand the conversation over.
"""

from __future__ import annotations

import functools
from typing import Any

from avatarium.core.model_files import package_dir, verify

THRESHOLD = -0.6
LEXICON_DIGESTS = {
    "vader_lexicon.txt": "1ec9c6e9ee19aade328f8beb393a6afa71a5bb3acf7d3cc22d4ef568df374bf5",
    "emoji_utf8_lexicon.txt": "b8d54223ae1ce22a3e12c1f745316b71678c328eb5f5d3063a842f37cfbe2823",
}


@functools.cache
def _analyzer() -> Any:
    verify(
        package_dir("vaderSentiment", "pip install --no-deps vaderSentiment==3.3.2"),
        LEXICON_DIGESTS,
    )
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def compound(message: str) -> float:
    """VADER's compound score of ``message``, from -1 (most negative) to 1."""
    return float(_analyzer().polarity_scores(message)["compound"])


def is_negative(message: str) -> bool:
    return compound(message) <= THRESHOLD
