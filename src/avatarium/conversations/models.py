"""Conversations, their messages, and stored idempotent responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from avatarium.storage.base import Base, UTCDateTime


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_owner_created", "account_id", "mode", "created_at"),
        # Covers the analytics overview's one aggregate over a period's conversations, so
        # it reads the index alone, not the wide rows (docs/analytics.md).
        Index(
            "ix_conversations_analytics",
            "account_id",
            "mode",
            "created_at",
            "id",
            "message_count",
            "escalated",
            "first_message_at",
            "last_message_at",
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(8))
    avatar_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10), default="active")
    ai_provider: Mapped[str] = mapped_column(String(40))
    tts_provider: Mapped[str] = mapped_column(String(40))
    voice_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    system_prompt: Mapped[str] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    byok_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    ai_tokens: Mapped[int] = mapped_column(Integer, default=0)
    tts_characters: Mapped[int] = mapped_column(Integer, default=0)
    stt_ms: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    stt_provider: Mapped[str | None] = mapped_column(String(40), nullable=True)
    language: Mapped[str | None] = mapped_column(String(35), nullable=True)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    escalation_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # Replies in a row that found no relevant knowledge and declined (failed_answers).
    failed_answers: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When its first and latest messages were stored (analytics: a conversation's duration).
    first_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(10))
    content: Mapped[str] = mapped_column(Text)
    reply_to: Mapped[str | None] = mapped_column(String(40), nullable=True)
    audio_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    speech: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    ai_provider: Mapped[str | None] = mapped_column(String(40), nullable=True)
    tts_provider: Mapped[str | None] = mapped_column(String(40), nullable=True)
    ai_tokens: Mapped[int] = mapped_column(Integer, default=0)
    tts_characters: Mapped[int] = mapped_column(Integer, default=0)
    stt_ms: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # How a spoken user message was given: {type: "audio", duration_ms, stt_provider, language}.
    input: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # A reply the user spoke over: it holds the text whose audio had been sent.
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # What a reply was grounded in: [{knowledge_id, title, excerpt, score}].
    sources: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # A safety action this reply records: {action: "topic_blocked" | "escalated", ...}.
    safety: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # A reply's time from receiving the send to storing it (analytics' latency).
    latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdempotentResponse(Base):
    """A request made with an ``Idempotency-Key``: in progress, or its stored answer."""

    __tablename__ = "idempotent_responses"
    __table_args__ = (UniqueConstraint("account_id", "mode", "idempotency_key", "endpoint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(8))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    endpoint: Mapped[str] = mapped_column(String(300))
    body_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Renewed while the work runs; once it lapses, a retry may take the claim over.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
