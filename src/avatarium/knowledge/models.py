"""An avatar's knowledge: the items an account adds, and the chunks retrieval searches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from avatarium.storage.base import Base, UTCDateTime


class KnowledgeItem(Base):
    """One text, Q&A pair or document added to a custom avatar."""

    __tablename__ = "knowledge"
    __table_args__ = (Index("ix_knowledge_avatar_created", "avatar_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    avatar_id: Mapped[str] = mapped_column(ForeignKey("avatars.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(12))
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    characters: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KnowledgeChunk(Base):
    """A retrievable piece of an item's text (full-text indexed per dialect)."""

    __tablename__ = "knowledge_chunks"
    __table_args__ = (Index("ix_knowledge_chunks_avatar", "avatar_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    knowledge_id: Mapped[str] = mapped_column(ForeignKey("knowledge.id", ondelete="CASCADE"))
    avatar_id: Mapped[str] = mapped_column(String(40))
    position: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    # The chunk's vector (float32, unit length) and the model space it is in.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    embedding_space: Mapped[str | None] = mapped_column(String(80), nullable=True)


class KnowledgeUpload(Base):
    """An item's raw content until its job has processed it."""

    __tablename__ = "knowledge_uploads"

    knowledge_id: Mapped[str] = mapped_column(
        ForeignKey("knowledge.id", ondelete="CASCADE"), primary_key=True
    )
    format: Mapped[str] = mapped_column(String(10))
    data: Mapped[bytes] = mapped_column(LargeBinary)
