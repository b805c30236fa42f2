"""Full-text retrieval over an avatar's chunks: SQLite FTS5 (BM25) or PostgreSQL's text
search (``ts_rank``), the best few chunks for a user's message."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text
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


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved chunk and how well it matched: ``score`` in (0, 1], the share of the
    question's words the chunk holds (the engines' own ranks order the hits, but BM25 and
    ``ts_rank`` are not on one scale, nor stable across corpus sizes)."""

    knowledge_id: str
    title: str
    content: str
    score: float


def query_words(message: str, limit: int = 24) -> list[str]:
    words = [w.lower() for w in _WORD.findall(message)]
    seen: dict[str, None] = {}
    for word in words:
        if word not in STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)[:limit]


_SQLITE = text(
    "SELECT c.knowledge_id, k.title, c.content, -bm25(knowledge_chunks_fts) AS score "
    "FROM knowledge_chunks_fts "
    "JOIN knowledge_chunks c ON c.id = knowledge_chunks_fts.rowid "
    "JOIN knowledge k ON k.id = c.knowledge_id "
    "WHERE knowledge_chunks_fts MATCH :query AND c.avatar_id = :avatar_id "
    "AND k.status = 'ready' ORDER BY score DESC LIMIT :limit"
)
_POSTGRES = text(
    "SELECT c.knowledge_id, k.title, c.content, "
    "ts_rank(to_tsvector('english', c.content), to_tsquery('english', :query)) AS score "
    "FROM knowledge_chunks c JOIN knowledge k ON k.id = c.knowledge_id "
    "WHERE c.avatar_id = :avatar_id AND k.status = 'ready' "
    "AND to_tsvector('english', c.content) @@ to_tsquery('english', :query) "
    "ORDER BY score DESC LIMIT :limit"
)


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
    return [Hit(str(r[0]), str(r[1]), str(r[2]), coverage(words, str(r[2]))) for r in rows]


def coverage(words: list[str], content: str) -> float:
    """The share of ``words`` found in ``content`` (a word matches a token that starts with
    its stem-ish prefix, so "rockets" finds "rocket"); at least one word, since it matched."""
    tokens = {t.lower() for t in _WORD.findall(content)}
    found = sum(
        1 for word in words if any(t.startswith(word[: max(4, len(word) - 2)]) for t in tokens)
    )
    return max(1, found) / len(words)
