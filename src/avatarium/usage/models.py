"""Monthly usage per account, and the quota reservations of replies in flight."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from avatarium.storage.base import Base, UTCDateTime


class UsagePeriod(Base):
    """One account's counters for one calendar month (UTC), e.g. period ``2026-11``."""

    __tablename__ = "usage_periods"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    messages_used: Mapped[int] = mapped_column(Integer, default=0)
    ai_tokens: Mapped[int] = mapped_column(Integer, default=0)
    tts_characters: Mapped[int] = mapped_column(Integer, default=0)
    # Of ai_tokens, those estimated from the text: a cloud reply cancelled before the vendor
    # reported its usage.
    ai_tokens_estimated: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Milliseconds of audio transcribed (reported as seconds to 0.1).
    stt_ms: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class QuotaReservation(Base):
    """One reply's claim on the quota while it is produced; expires if its worker dies."""

    __tablename__ = "quota_reservations"
    __table_args__ = (Index("ix_quota_reservations_account_period", "account_id", "period"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(7))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
