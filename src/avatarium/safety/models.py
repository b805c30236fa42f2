"""Recorded safety actions: what the webhooks of section 10 emit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from avatarium.storage.base import Base, UTCDateTime


class SafetyEvent(Base):
    """One action the safety rules took on a reply (a topic redirect, a hand-off)."""

    __tablename__ = "safety_events"
    __table_args__ = (
        Index("ix_safety_events_account_created", "account_id", "mode", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40))
    mode: Mapped[str] = mapped_column(String(8))
    avatar_id: Mapped[str] = mapped_column(String(100))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(20))  # "topic_blocked" | "escalated"
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)  # the reply's `safety` object
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
