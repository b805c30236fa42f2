"""Semantic matching of a user message against an avatar's topics to avoid, with the
embedded E5 model (the same one knowledge retrieval uses, so a send embeds its message once).

E5 rates any two short English texts as fairly similar (0.75-0.85), and short, vague
messages ("Hello there!") as similar to everything, so a fixed cosine cannot tell a topic
from noise. A message matches a topic when it is closer to the topic than to everyday
subjects: ``cosine(message, topic) - mean of its three highest cosines with BACKGROUND``
at least ``MARGIN``. Calibration (docs/avatars.md): "Who should I vote for in the next
election?" is about "politics" (-0.006 over background), "Which pills should I take for my
headache?" about "medical advice" (+0.014), while "What time does the store open?" is no
nearer "the weather" than -0.033. Keywords (``rules.py``) still match as before.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from avatarium.providers.embeddings.base import EmbeddingProvider, Vectors

MARGIN = -0.012
# Everyday subjects a message is compared with; an entry too close to a topic (cosine
# above ``SAME_SUBJECT``) is left out of that topic's background.
BACKGROUND = (
    "hello", "thank you", "tell me a joke", "what can you do", "a question about my order",
    "how does this product work", "opening hours", "price", "shipping and delivery",
    "returns and refunds", "technical problem", "account and password", "sports", "cooking",
    "travel", "music", "history", "science", "movies", "weather",
)  # fmt: skip
SAME_SUBJECT = 0.9
_CACHE_LIMIT = 4_096


class TopicMatcher:
    """Which of an avatar's topics a message is about, if any."""

    def __init__(self, embedder: EmbeddingProvider) -> None:
        self.embedder = embedder
        self._background: Vectors | None = None
        self._topics: dict[str, Vectors] = {}
        self._lock = threading.Lock()

    async def _vectors(self, topics: Sequence[str]) -> tuple[Vectors, Vectors]:
        if self._background is None:
            self._background = await self.embedder.embed(list(BACKGROUND), query=True)
        missing = [t for t in topics if t not in self._topics]
        if missing:
            vectors = await self.embedder.embed(missing, query=True)
            with self._lock:
                if len(self._topics) > _CACHE_LIMIT:
                    self._topics.clear()
                self._topics.update(zip(missing, vectors, strict=True))
        return self._background, np.stack([self._topics[t] for t in topics])

    async def match(self, message: Vectors, topics: Sequence[str]) -> str | None:
        """The topic ``message`` (its query vector) is most clearly about, or None."""
        if not topics:
            return None
        background, vectors = await self._vectors(topics)
        near_background = background @ message
        best: tuple[float, str] | None = None
        for topic, vector in zip(topics, vectors, strict=True):
            others = near_background[background @ vector < SAME_SUBJECT]
            base = float(np.sort(others)[-3:].mean()) if len(others) else 0.0
            margin = float(vector @ message) - base
            if margin >= MARGIN and (best is None or margin > best[0]):
                best = (margin, topic)
        return best[1] if best else None
