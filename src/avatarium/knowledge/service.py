"""An avatar's knowledge base: adding, listing and removing items, and retrieving the chunks
a send is grounded in. Text and Q&A items are chunked and indexed as they are added."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from avatarium.avatars.service import PREFIX as CUSTOM_PREFIX
from avatarium.avatars.service import AvatarService, not_found, read_only
from avatarium.core.clock import Clock, rfc3339
from avatarium.core.errors import KnowledgeNotFoundError
from avatarium.core.ids import new_id
from avatarium.keys.service import Principal
from avatarium.knowledge.chunking import chunk_text
from avatarium.knowledge.models import KnowledgeChunk, KnowledgeItem
from avatarium.knowledge.retrieval import Hit, search
from avatarium.storage.base import table_of
from avatarium.storage.db import Database

TITLE_CHARS = 60
_INSERT_CHUNKS = insert(table_of(KnowledgeChunk))


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

    def __init__(self, db: Database, clock: Clock, avatars: AvatarService) -> None:
        self.db = db
        self.clock = clock
        self.avatars = avatars

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
        """Add a text or Q&A item: chunked and indexed now, so it is ``ready`` at once."""
        await self._own_avatar(principal, avatar_id, write=True)
        now = self.clock.now()
        chunks = chunk_text(text)
        item = KnowledgeItem(
            id=new_id("kn"), avatar_id=avatar_id, type=kind, title=title, status="ready",
            chunks=len(chunks), characters=len(text), error=None, metadata_=metadata,
            created_at=now, updated_at=now,
        )  # fmt: skip
        body = knowledge_json(item)

        def work(session: Session) -> None:
            session.add(item)
            session.flush()
            session.execute(
                _INSERT_CHUNKS,
                [
                    {"knowledge_id": item.id, "avatar_id": avatar_id, "position": index,
                     "content": content}
                    for index, content in enumerate(chunks)
                ],
            )  # fmt: skip

        await self.db.write(work)
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
            session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.knowledge_id == item.id))
            session.delete(item)

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

    async def retrieve(self, avatar_id: str, message: str, limit: int = 3) -> list[Hit]:
        """The chunks a send about ``message`` is grounded in (presets have none: no query)."""
        if not avatar_id.startswith(CUSTOM_PREFIX):
            return []

        def work(connection: Connection) -> list[Hit]:
            return search(connection, avatar_id, message, limit)

        return await self.db.read_core(work)


def _missing(knowledge_id: str) -> KnowledgeNotFoundError:
    return KnowledgeNotFoundError(
        f"No knowledge {knowledge_id!r} on this avatar.", details={"field": "knowledge_id"}
    )
