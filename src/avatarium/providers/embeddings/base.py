"""The contract every embedding provider fulfils: texts in, unit vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Turns text into vectors whose dot product is their cosine similarity.

    ``space`` names the vector space (provider and model): vectors from different spaces
    are never compared, so changing the embedding model leaves older knowledge searchable
    by full text until it is added again."""

    name: str
    space: str

    async def embed(self, texts: Sequence[str], *, query: bool) -> Vectors:
        """One L2-normalised row per text; ``query`` marks a search query rather than a
        passage to be found (models such as E5 embed the two differently)."""
        ...


def normalised(rows: Vectors) -> Vectors:
    """Rows scaled to unit length (a zero row stays zero)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    scaled: Vectors = (rows / norms).astype(np.float32, copy=False)
    return scaled
