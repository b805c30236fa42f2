"""Avatars an account creates (presets live in the catalog, not here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from avatarium.storage.base import Base, UTCDateTime


class CustomAvatar(Base):
    """One account's avatar in one mode (``live`` or ``test``), like a conversation."""

    __tablename__ = "avatars"
    __table_args__ = (Index("ix_avatars_owner_created", "account_id", "mode", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    personality: Mapped[str | None] = mapped_column(Text, nullable=True)
    greeting: Mapped[str | None] = mapped_column(Text, nullable=True)
    traits: Mapped[list[str]] = mapped_column(JSON, default=list)
    tone: Mapped[str | None] = mapped_column(String(100), nullable=True)
    language: Mapped[str | None] = mapped_column(String(35), nullable=True)
    voices: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    ai_provider: Mapped[str | None] = mapped_column(String(40), nullable=True)
    ai_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    tts_provider: Mapped[str | None] = mapped_column(String(40), nullable=True)
    stt_provider: Mapped[str | None] = mapped_column(String(40), nullable=True)
    topics_to_avoid: Mapped[list[str]] = mapped_column(JSON, default=list)
    escalation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # A preset's face to wear ({"preset": "aria-001"}) or an image of its own ({"model_url"}).
    appearance: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # Bumped with every change to its knowledge (cached vector indexes key on it).
    knowledge_revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
