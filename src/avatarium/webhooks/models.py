"""Webhook endpoints, the events recorded for them, and the log of delivery attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from avatarium.storage.base import Base, UTCDateTime


class Webhook(Base):
    """An endpoint an account registered, owned by its account and mode like a conversation."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_owner", "account_id", "mode", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The signing secret, sealed with the server secret: it must be read back to sign, so
    # it cannot be a one-way hash like an API key.
    secret_sealed: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean)
    disabled_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookEvent(Base):
    """One event, recorded in the transaction that caused it (the outbox): it exists if and
    only if its cause was committed. Recorded only when an endpoint wants it."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_owner", "account_id", "mode", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40))
    mode: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    """One attempt to deliver one event to one endpoint."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # "succeeded", "retrying" (another attempt is scheduled) or "failed" (the last one).
    outcome: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
