"""An avatar's knowledge base: adding, listing and removing items, and retrieving the chunks
a send is grounded in. Small text and Q&A items are indexed as they are added; documents
and long texts by a background job (``ingest.py``)."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from avatarium.avatars.models import CustomAvatar
from avatarium.avatars.service import PREFIX as CUSTOM_PREFIX
from avatarium.avatars.service import AvatarService, not_found, read_only
from avatarium.core.clock import Clock, rfc3339
from avatarium.core.errors import KnowledgeNotFoundError
from avatarium.core.ids import new_id
from avatarium.jobs.queue import enqueue
from avatarium.keys.service import Principal
from avatarium.knowledge.chunking import chunk_text
from avatarium.knowledge.extract import DocumentFormat
from avatarium.knowledge.ingest import (
    INLINE_CHUNKS,
    JOB_KIND,
    Indexer,
    bump_revision,
    store_index,
)
from avatarium.knowledge.models import KnowledgeChunk, KnowledgeItem, KnowledgeUpload
from avatarium.knowledge.retrieval import Hit, chunks_by_id, fuse, search
from avatarium.knowledge.vectors import VectorCache, load_matrix
from avatarium.providers.embeddings.base import EmbeddingProvider, Vectors
from avatarium.providers.errors import ProviderError
from avatarium.providers.registry import EMBEDDED_EMBEDDING
from avatarium.safety.topics import TopicMatcher
from avatarium.storage.db import Database

log = logging.getLogger(__name__)

TITLE_CHARS = 60
# Each ranking offers this many candidates to the fusion.
CANDIDATES = 20
# Dense candidates below this cosine are not offered at all (E5 rates unrelated English
# text at about 0.7-0.8).
DENSE_FLOOR = 0.75
# Question vectors kept (1.5 KB each with E5).
QUESTION_CACHE = 2_048


def knowledge_json(item: KnowledgeItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "object": "knowledge",
        "avatar_id": item.avatar_id,
        "type": item.type,
        "title": item.title,
        "status": item.status,
        "chunks": item.chunks,
        "characters": item.characters,
        "error": item.error,
        "metadata": dict(item.metadata_ or {}),
        "created_at": rfc3339(item.created_at),
    }


def default_title(text: str) -> str:
    """The text's first 60 characters, cut at a word where one is near."""
    flat = " ".join(text.split())
    if len(flat) <= TITLE_CHARS:
        return flat
    cut = flat.rfind(" ", 0, TITLE_CHARS)
    return flat[: cut if cut > TITLE_CHARS // 2 else TITLE_CHARS] + "…"


class KnowledgeService:
    """Knowledge of custom avatars (presets have none and take none)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        avatars: AvatarService,
        indexer: Indexer,
        *,
        max_attempts: int = 3,
    ) -> None:
        self.db = db
        self.clock = clock
        self.avatars = avatars
        self.indexer = indexer
        self.max_attempts = max_attempts
        self.vectors = VectorCache()
        self._questions: OrderedDict[tuple[str, str], Vectors] = OrderedDict()
        # Topics to avoid are matched by meaning with the embedded model, whatever embeds
        # the knowledge: its calibration is E5's (safety/topics.py).
        local = indexer.providers.embedding(EMBEDDED_EMBEDDING)
        self.local_embedder = local
        self.topics = TopicMatcher(local) if local is not None else None
        # Called after a job is committed, so a worker in this process starts at once.
        self.on_enqueued: Callable[[], None] = lambda: None

    async def _own_avatar(self, principal: Principal, avatar_id: str, *, write: bool) -> bool:
        """True for the caller's own avatar; False for a preset (read: no knowledge);
        403 to write to a preset, 404 for anything else."""
        if self.avatars.catalog.get(avatar_id) is not None:
            if write:
                raise read_only(avatar_id)
            return False
        if await self.avatars.resolve(principal, avatar_id) is None:
            raise not_found(avatar_id)
        return True

    async def add(
        self,
        principal: Principal,
        avatar_id: str,
        *,
        kind: str,
        text: str,
        title: str,
        metadata: dict[str, str],
    ) -> dict[str, Any]:
        """Add a text or Q&A item. A small one is indexed now (``ready``); a long text goes
        to the background like a document (``processing``)."""
        await self._own_avatar(principal, avatar_id, write=True)
        chunks = chunk_text(text)
        indexed = None
        if len(chunks) <= INLINE_CHUNKS:
            try:
                indexed = await self.indexer.embed_chunks(chunks, len(text), principal.mode)
            except ProviderError as exc:
                # The embedding provider is away: the job retries later (``processing``).
                log.warning("embedding failed (%s); knowledge goes to the background", exc)
        if indexed is None:
            return await self._queue(
                avatar_id, kind, title, metadata, DocumentFormat.TEXT, text.encode()
            )
        item = self._new_item(avatar_id, kind, title, metadata)

        def work(session: Session) -> dict[str, Any]:
            session.add(item)
            session.flush()
            store_index(session, self.clock, item, indexed)
            return knowledge_json(item)

        return await self.db.write(work)

    async def add_document(
        self,
        principal: Principal,
        avatar_id: str,
        *,
        fmt: DocumentFormat,
        data: bytes,
        title: str,
        metadata: dict[str, str],
    ) -> dict[str, Any]:
        """Store a document and queue its processing: ``processing`` now, then ``ready``
        or ``failed`` with a readable ``error``."""
        await self._own_avatar(principal, avatar_id, write=True)
        return await self._queue(avatar_id, "document", title, metadata, fmt, data)

    def _new_item(
        self, avatar_id: str, kind: str, title: str, metadata: dict[str, str]
    ) -> KnowledgeItem:
        """An item not indexed yet (``processing``; ``store_index`` makes it ready)."""
        now = self.clock.now()
        return KnowledgeItem(
            id=new_id("kn"), avatar_id=avatar_id, type=kind, title=title, status="processing",
            chunks=0, characters=0, error=None, metadata_=metadata, created_at=now,
            updated_at=now,
        )  # fmt: skip

    async def _queue(
        self,
        avatar_id: str,
        kind: str,
        title: str,
        metadata: dict[str, str],
        fmt: DocumentFormat,
        data: bytes,
    ) -> dict[str, Any]:
        item = self._new_item(avatar_id, kind, title, metadata)

        def work(session: Session) -> dict[str, Any]:
            # The item, its content and its job commit together: none exists without the rest.
            session.add(item)
            session.flush()
            session.add(KnowledgeUpload(knowledge_id=item.id, format=fmt.value, data=data))
            enqueue(session, self.clock, JOB_KIND, {"knowledge_id": item.id},
                    max_attempts=self.max_attempts)  # fmt: skip
            return knowledge_json(item)

        body = await self.db.write(work)
        self.on_enqueued()
        return body

    async def list_items(self, principal: Principal, avatar_id: str) -> dict[str, Any]:
        if not await self._own_avatar(principal, avatar_id, write=False):
            items: list[KnowledgeItem] = []
        else:
            items = await self.db.read(
                lambda session: list(
                    session.execute(
                        select(KnowledgeItem)
                        .where(KnowledgeItem.avatar_id == avatar_id)
                        .order_by(KnowledgeItem.created_at, KnowledgeItem.id)
                    ).scalars()
                )
            )
        data = [knowledge_json(item) for item in items]
        return {"object": "list", "data": data, "has_more": False, "next_cursor": None}

    async def get(self, principal: Principal, avatar_id: str, knowledge_id: str) -> dict[str, Any]:
        if not await self._own_avatar(principal, avatar_id, write=False):
            raise _missing(knowledge_id)
        item = await self.db.read(lambda session: session.get(KnowledgeItem, knowledge_id))
        if item is None or item.avatar_id != avatar_id:
            raise _missing(knowledge_id)
        return knowledge_json(item)

    async def delete(
        self, principal: Principal, avatar_id: str, knowledge_id: str
    ) -> dict[str, Any]:
        """Remove the item, its chunks and their index entries."""
        await self._own_avatar(principal, avatar_id, write=True)

        def work(session: Session) -> None:
            item = session.get(KnowledgeItem, knowledge_id)
            if item is None or item.avatar_id != avatar_id:
                raise _missing(knowledge_id)
            # Chunks first: the SQLite index follows their deletes through its trigger.
            # Their vectors go with them; the revision retires cached matrices.
            session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.knowledge_id == item.id))
            session.delete(item)
            bump_revision(session, avatar_id)

        await self.db.write(work)
        return {"id": knowledge_id, "object": "knowledge", "deleted": True}

    async def chunk_count(self, avatar_id: str) -> int:
        """How many chunks an avatar's knowledge holds (for tests and operators)."""
        return int(
            await self.db.read(
                lambda session: session.execute(
                    select(func.count())
                    .select_from(KnowledgeChunk)
                    .where(KnowledgeChunk.avatar_id == avatar_id)
                ).scalar_one()
            )
        )

    async def probe(self, message: str) -> Probe | None:
        """The message embedded by the embedded model (for topic matching; retrieval reuses
        it when the knowledge is in the same space)."""
        if self.local_embedder is None:
            return None
        vector = await self._question_vector(self.local_embedder, message)
        return Probe(self.local_embedder.space, vector)

    async def _question_vector(self, embedder: EmbeddingProvider, message: str) -> Vectors:
        """A question's vector, from a small cache: people ask the same things again ("what
        are your opening hours?"), and embedding a question is most of a retrieval's time."""
        key = (embedder.space, " ".join(message.split()))
        vector = self._questions.get(key)
        if vector is None:
            vector = (await embedder.embed([message], query=True))[0]
            self._questions[key] = vector
            if len(self._questions) > QUESTION_CACHE:
                self._questions.popitem(last=False)
        else:
            self._questions.move_to_end(key)
        return vector

    async def retrieve(
        self, avatar_id: str, message: str, limit: int = 3, *, probe: Probe | None = None
    ) -> list[Hit]:
        """The chunks a send about ``message`` is grounded in: full-text and dense rankings
        fused (presets have no knowledge: no query at all). A failing embedding provider
        leaves full text alone rather than failing the send."""
        if not avatar_id.startswith(CUSTOM_PREFIX):
            return []
        found = await self.db.read_core(lambda c: _revision(c, avatar_id))
        if found is None or found[0] == 0:
            return []  # no knowledge was ever added
        revision, mode = found
        embedder = self.indexer.embedder(mode)
        lexical_task = asyncio.ensure_future(
            self.db.read_core(lambda c: search(c, avatar_id, message, CANDIDATES))
        )
        dense: list[tuple[int, float]] = []
        try:
            if embedder is not None:
                matrix = self.vectors.get(avatar_id, revision, embedder.space)
                if matrix is None:
                    space = embedder.space
                    matrix = await self.db.read_core(lambda c: load_matrix(c, avatar_id, space))
                    self.vectors.put(avatar_id, revision, space, matrix)
                if len(matrix.ids):
                    if probe is not None and probe.space == embedder.space:
                        vector = probe.vector
                    else:
                        vector = await self._question_vector(embedder, message)
                    dense = matrix.nearest(vector, CANDIDATES, DENSE_FLOOR)
        except Exception:
            log.warning("dense retrieval failed; using full text only", exc_info=True)
        lexical = await lexical_task
        known = {hit.chunk_id for hit in lexical}
        missing = [chunk_id for chunk_id, _ in dense[: limit * 2] if chunk_id not in known]
        details = await self.db.read_core(lambda c: chunks_by_id(c, missing)) if missing else {}
        return fuse(lexical, dense, details, limit)


@dataclass(frozen=True, slots=True)
class Probe:
    """A message's query vector and the space it is in."""

    space: str
    vector: Vectors


def _revision(connection: Connection, avatar_id: str) -> tuple[int, str] | None:
    row = connection.execute(
        select(CustomAvatar.knowledge_revision, CustomAvatar.mode).where(
            CustomAvatar.id == avatar_id
        )
    ).first()
    return (int(row[0]), str(row[1])) if row is not None else None


def _missing(knowledge_id: str) -> KnowledgeNotFoundError:
    return KnowledgeNotFoundError(
        f"No knowledge {knowledge_id!r} on this avatar.", details={"field": "knowledge_id"}
    )
