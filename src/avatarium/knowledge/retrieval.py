"""Retrieval over an avatar's chunks: full-text ranking (SQLite FTS5's BM25 or PostgreSQL's
``ts_rank``), fused with the dense ranking of ``vectors.py`` by reciprocal rank."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

_WORD = re.compile(r"[^\W_]{2,}", re.UNICODE)
# Words too common to say what a question is about (English; the index stems the rest).
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "could",
        "do",
        "does",
        "did",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "tell",
        "about",
        "please",
        "know",
    ]
)


# Reciprocal rank fusion (Cormack et al., 2009): a chunk's fused score is the sum of
# 1 / (RRF_K + rank) over the rankings that found it. A full-text hit takes part only when
# it holds at least three quarters of the question's words (FUSION_COVERAGE): then the
# question's own terms are in it (a part code, an error number). A hit on the product's
# name alone would otherwise outvote the vectors on paraphrased questions. The evaluation
# (bench/knowledge.py; docs/knowledge.md has the variants measured): plain fusion, recall@5
# 0.91 and top-1 0.60 on paraphrases; this, 1.00 and 0.96, and every part code found first.
RRF_K = 60
FUSION_COVERAGE = 0.75


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved chunk and how well it matched. ``score`` is the cosine similarity of
    question and chunk when the chunk has a vector, else the share of the question's words
    it holds (BM25 and ``ts_rank`` are on no common scale, nor stable across corpora)."""

    knowledge_id: str
    title: str
    content: str
    score: float
    chunk_id: int = 0
    relevant: bool = True  # close enough to the question to count as an answer's source


def query_words(message: str, limit: int = 24) -> list[str]:
    words = [w.lower() for w in _WORD.findall(message)]
    seen: dict[str, None] = {}
    for word in words:
        if word not in STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)[:limit]


_SQLITE = text(
    "SELECT c.knowledge_id, k.title, c.content, c.id, -bm25(knowledge_chunks_fts) AS score "
    "FROM knowledge_chunks_fts "
    "JOIN knowledge_chunks c ON c.id = knowledge_chunks_fts.rowid "
    "JOIN knowledge k ON k.id = c.knowledge_id "
    "WHERE knowledge_chunks_fts MATCH :query AND c.avatar_id = :avatar_id "
    "AND k.status = 'ready' ORDER BY score DESC LIMIT :limit"
)
_POSTGRES = text(
    "SELECT c.knowledge_id, k.title, c.content, c.id, "
    "ts_rank(to_tsvector('english', c.content), to_tsquery('english', :query)) AS score "
    "FROM knowledge_chunks c JOIN knowledge k ON k.id = c.knowledge_id "
    "WHERE c.avatar_id = :avatar_id AND k.status = 'ready' "
    "AND to_tsvector('english', c.content) @@ to_tsquery('english', :query) "
    "ORDER BY score DESC LIMIT :limit"
)


_BY_ID = text(
    "SELECT c.id, c.knowledge_id, k.title, c.content FROM knowledge_chunks c "
    "JOIN knowledge k ON k.id = c.knowledge_id WHERE c.id IN :ids AND k.status = 'ready'"
).bindparams(bindparam("ids", expanding=True))
# A full-text hit holding at least this share of the question's words, or a chunk at least
# this close in the embedding space, counts as relevant knowledge (calibrated on the
# retrieval evaluation, bench/knowledge_eval.py; docs/knowledge.md).
MIN_COVERAGE = 0.5
RELEVANT_COSINE = 0.83


def search(connection: Connection, avatar_id: str, message: str, limit: int) -> list[Hit]:
    """The best ``limit`` chunks of the avatar's ready knowledge for ``message``."""
    words = query_words(message)
    if not words:
        return []
    if connection.dialect.name == "postgresql":
        statement, query = _POSTGRES, " | ".join(words)
    else:
        statement, query = _SQLITE, " OR ".join(f'"{w}"' for w in words)
    rows = connection.execute(
        statement, {"query": query, "avatar_id": avatar_id, "limit": limit}
    ).all()
    out = []
    for row in rows:
        share = coverage(words, str(row[2]))
        out.append(Hit(str(row[0]), str(row[1]), str(row[2]), share, int(row[3]),
                       relevant=share >= MIN_COVERAGE))  # fmt: skip
    return out


def chunks_by_id(connection: Connection, ids: list[int]) -> dict[int, tuple[str, str, str]]:
    """(knowledge id, title, content) of the given chunks."""
    if not ids:
        return {}
    rows = connection.execute(_BY_ID, {"ids": ids}).all()
    return {int(r[0]): (str(r[1]), str(r[2]), str(r[3])) for r in rows}


def fuse(
    lexical: list[Hit],
    dense: list[tuple[int, float]],
    details: dict[int, tuple[str, str, str]],
    limit: int,
) -> list[Hit]:
    """The best ``limit`` chunks by reciprocal rank fusion of the two rankings. A chunk's
    score is its cosine similarity where the dense ranking saw it."""
    fused: dict[int, float] = {}
    for rank, hit in enumerate([h for h in lexical if h.score >= FUSION_COVERAGE], 1):
        fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    for rank, (chunk_id, _) in enumerate(dense, 1):
        fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    cosine = dict(dense)
    by_id = {hit.chunk_id: hit for hit in lexical}
    out: list[Hit] = []
    for chunk_id in sorted(fused, key=lambda c: -fused[c])[:limit]:
        lexical_hit = by_id.get(chunk_id)
        similarity = cosine.get(chunk_id)
        if lexical_hit is not None:
            knowledge_id, title, content = (
                lexical_hit.knowledge_id, lexical_hit.title, lexical_hit.content
            )  # fmt: skip
        elif chunk_id in details:
            knowledge_id, title, content = details[chunk_id]
        else:
            continue  # deleted between the two queries
        relevant = (similarity is not None and similarity >= RELEVANT_COSINE) or (
            lexical_hit is not None and lexical_hit.relevant
        )
        score = similarity if similarity is not None else (lexical_hit.score if lexical_hit else 0)
        out.append(Hit(knowledge_id, title, content, score, chunk_id, relevant=relevant))
    return out


def coverage(words: list[str], content: str) -> float:
    """The share of ``words`` found in ``content`` (a word matches a token that starts with
    its stem-ish prefix, so "rockets" finds "rocket"); at least one word, since it matched."""
    tokens = {t.lower() for t in _WORD.findall(content)}
    found = sum(
        1 for word in words if any(t.startswith(word[: max(4, len(word) - 2)]) for t in tokens)
    )
    return max(1, found) / len(words)
