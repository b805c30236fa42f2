"""Turning an item's content into indexed chunks: extract → chunk → embed → index.

Small text and Q&A items are indexed while their request waits; documents and long texts
are stored with a durable job (``knowledge.ingest``) that a worker runs in the background,
after a restart if need be. Writing the index is idempotent: an item's chunks are replaced
whole, in the same transaction that ends the job, so a job that runs twice (its worker was
killed after the work but before the commit) leaves one copy.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session

from avatarium.avatars.models import CustomAvatar
from avatarium.core.clock import Clock
from avatarium.core.settings import Settings
from avatarium.jobs.runner import RunningJob
from avatarium.knowledge.chunking import chunk_text
from avatarium.knowledge.extract import DocumentFormat, ExtractionError, extract
from avatarium.knowledge.models import KnowledgeChunk, KnowledgeItem, KnowledgeUpload
from avatarium.knowledge.vectors import to_blob
from avatarium.providers.embeddings.base import EmbeddingProvider, Vectors
from avatarium.providers.registry import EMBEDDED_EMBEDDING, ProviderRegistry
from avatarium.storage.base import table_of
from avatarium.storage.db import Database

log = logging.getLogger(__name__)

JOB_KIND = "knowledge.ingest"
# Items of up to this many chunks are embedded while the request waits (about a second
# with the embedded model); larger ones go to the background.
INLINE_CHUNKS = 8
PROGRESS_BATCH = 32
_INSERT_CHUNKS = insert(table_of(KnowledgeChunk))


@dataclass(frozen=True, slots=True)
class Indexed:
    """An item's chunks and their vectors (``None`` without an embedding provider)."""

    chunks: list[str]
    characters: int
    vectors: Vectors | None
    space: str | None


class Indexer:
    """Chunks and embeds text with the embedding provider of the item's mode."""

    def __init__(self, providers: ProviderRegistry, settings: Settings) -> None:
        self.providers = providers
        self.settings = settings

    def embedder(self, mode: str) -> EmbeddingProvider | None:
        """The configured provider; the sandbox (test mode) always embeds in-process."""
        name = EMBEDDED_EMBEDDING if mode == "test" else self.settings.embedding_provider
        return self.providers.embedding(name) or self.providers.embedding(EMBEDDED_EMBEDDING)

    async def index(self, text: str, mode: str, label: str = "") -> Indexed:
        """``text`` chunked and embedded."""
        return await self.embed_chunks(chunk_text(text), len(text), mode, label)

    async def embed_chunks(
        self, chunks: list[str], characters: int, mode: str, label: str = ""
    ) -> Indexed:
        """Chunks already cut (of a text of ``characters``), embedded."""
        embedder = self.embedder(mode)
        if embedder is None or not chunks:
            return Indexed(chunks, characters, None, None)
        parts: list[Vectors] = []
        for start in range(0, len(chunks), PROGRESS_BATCH):
            parts.append(await embedder.embed(chunks[start : start + PROGRESS_BATCH], query=False))
            if label and len(chunks) > PROGRESS_BATCH:
                done = min(len(chunks), start + PROGRESS_BATCH)
                log.info("%s: embedded %d of %d chunks", label, done, len(chunks))
        return Indexed(chunks, characters, np.concatenate(parts), embedder.space)


def bump_revision(session: Session, avatar_id: str) -> None:
    """Mark the avatar's knowledge changed (cached vector matrices key on the revision)."""
    session.execute(
        update(CustomAvatar)
        .where(CustomAvatar.id == avatar_id)
        .values(knowledge_revision=CustomAvatar.knowledge_revision + 1)
        .execution_options(synchronize_session=False)
    )


def store_index(session: Session, clock: Clock, item: KnowledgeItem, indexed: Indexed) -> None:
    """Replace the item's chunks with ``indexed`` and mark it ready."""
    session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.knowledge_id == item.id))
    rows = []
    for position, content in enumerate(indexed.chunks):
        vector = indexed.vectors[position] if indexed.vectors is not None else None
        rows.append(
            {"knowledge_id": item.id, "avatar_id": item.avatar_id, "position": position,
             "content": content, "embedding": to_blob(vector) if vector is not None else None,
             "embedding_space": indexed.space if vector is not None else None}
        )  # fmt: skip
    if rows:
        session.execute(_INSERT_CHUNKS, rows)
    item.status, item.error = "ready", None
    item.chunks, item.characters = len(indexed.chunks), indexed.characters
    item.updated_at = clock.now()
    session.execute(delete(KnowledgeUpload).where(KnowledgeUpload.knowledge_id == item.id))
    bump_revision(session, item.avatar_id)


def mark_failed(session: Session, clock: Clock, knowledge_id: str, error: str) -> None:
    item = session.get(KnowledgeItem, knowledge_id)
    if item is None:
        return
    item.status, item.error, item.updated_at = "failed", error, clock.now()
    session.execute(delete(KnowledgeUpload).where(KnowledgeUpload.knowledge_id == item.id))


class IngestHandler:
    """The ``knowledge.ingest`` job: one item's upload, processed and indexed."""

    def __init__(self, db: Database, clock: Clock, indexer: Indexer) -> None:
        self.db = db
        self.clock = clock
        self.indexer = indexer

    async def run(self, job: RunningJob) -> None:
        knowledge_id = str(job.payload["knowledge_id"])
        loaded = await self.db.read(lambda session: _load(session, knowledge_id))
        if loaded is None:
            return  # deleted while it waited: nothing to do
        mode, kind, fmt, data = loaded
        try:
            if kind == "document":
                text = await asyncio.to_thread(extract, data, DocumentFormat(fmt))
            else:  # a long text item, taken as it was given (like a short one)
                text = data.decode()
        except ExtractionError as exc:
            reason = str(exc)
            log.info("knowledge %s failed: %s", knowledge_id, reason)
            await job.finish(lambda s: mark_failed(s, self.clock, knowledge_id, reason))
            return
        indexed = await self.indexer.index(text, mode, label=f"knowledge {knowledge_id}")

        def commit(session: Session) -> None:
            item = session.get(KnowledgeItem, knowledge_id)
            if item is not None:  # else deleted while it was processed
                store_index(session, self.clock, item, indexed)

        await job.finish(commit)
        log.info("knowledge %s ready: %d chunks", knowledge_id, len(indexed.chunks))

    async def give_up(self, job: RunningJob, error: str) -> None:
        knowledge_id = str(job.payload["knowledge_id"])
        readable = (
            f"Processing failed after {job.claim.max_attempts} attempts; "
            "add the document again, or contact the operator if it keeps failing."
        )
        await job.fail(error, lambda s: mark_failed(s, self.clock, knowledge_id, readable))


def _load(session: Session, knowledge_id: str) -> tuple[str, str, str, bytes] | None:
    item = session.get(KnowledgeItem, knowledge_id)
    upload = session.get(KnowledgeUpload, knowledge_id)
    if item is None or upload is None:
        return None
    avatar = session.get(CustomAvatar, item.avatar_id)
    if avatar is None:
        return None
    return avatar.mode, item.type, upload.format, bytes(upload.data)
