"""Dense retrieval's index: each avatar's chunk vectors as one matrix in memory, searched
by a matrix-vector product (10,000 chunks by 384 dimensions: about 1 ms).

The portable path, the same on SQLite and PostgreSQL: vectors are stored with their chunks
and loaded once per knowledge revision (every change to an avatar's knowledge bumps it, so
a cached matrix is never stale across workers or hosts). Matrices are kept within a byte
budget, least recently used first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.engine import Connection

from avatarium.knowledge.models import KnowledgeChunk, KnowledgeItem
from avatarium.providers.embeddings.base import Vectors

DEFAULT_BUDGET_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Matrix:
    """An avatar's vectors in one space: row ``i`` is chunk ``ids[i]``."""

    ids: npt.NDArray[np.int64]
    vectors: Vectors

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes + self.vectors.nbytes)

    def nearest(self, query: Vectors, limit: int, floor: float) -> list[tuple[int, float]]:
        """The ``limit`` rows most similar to ``query`` (cosine at least ``floor``)."""
        if len(self.ids) == 0:
            return []
        scores = self.vectors @ query.reshape(-1)
        if len(scores) > limit:
            top = np.argpartition(-scores, limit - 1)[:limit]
        else:
            top = np.arange(len(scores))
        ranked = top[np.argsort(-scores[top])]
        return [(int(self.ids[i]), float(scores[i])) for i in ranked if scores[i] >= floor]


EMPTY = Matrix(np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))


def load_matrix(connection: Connection, avatar_id: str, space: str) -> Matrix:
    """Every ready chunk vector of an avatar in ``space``."""
    rows = connection.execute(
        select(KnowledgeChunk.id, KnowledgeChunk.embedding)
        .join(KnowledgeItem, KnowledgeItem.id == KnowledgeChunk.knowledge_id)
        .where(
            KnowledgeChunk.avatar_id == avatar_id,
            KnowledgeChunk.embedding_space == space,
            KnowledgeItem.status == "ready",
        )
        .order_by(KnowledgeChunk.id)
    ).all()
    if not rows:
        return EMPTY
    ids = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.vstack([np.frombuffer(bytes(r[1] or b""), dtype="<f4") for r in rows])
    return Matrix(ids, vectors.astype(np.float32, copy=False))


def to_blob(vector: Vectors) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


class VectorCache:
    """Matrices keyed by (avatar, knowledge revision, space), within a byte budget."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[tuple[str, int, str], Matrix] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, avatar_id: str, revision: int, space: str) -> Matrix | None:
        key = (avatar_id, revision, space)
        with self._lock:
            matrix = self._entries.get(key)
            if matrix is not None:
                self._entries.move_to_end(key)
            return matrix

    def put(self, avatar_id: str, revision: int, space: str, matrix: Matrix) -> None:
        with self._lock:
            # An avatar's older revisions are of no use any more.
            for key in [k for k in self._entries if k[0] == avatar_id and k[2] == space]:
                del self._entries[key]
            self._entries[(avatar_id, revision, space)] = matrix
            total = sum(m.nbytes for m in self._entries.values())
            while total > self.budget_bytes and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                total -= dropped.nbytes
