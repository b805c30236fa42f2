"""Webhook endpoints, events and deliveries; daily analytics roll-ups (filled from the
stored conversations and messages); a reply's latency; a conversation's first and latest
message times.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "account_id",
            sa.String(40),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("secret_sealed", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.String(20), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_webhooks_owner", "webhooks", ["account_id", "mode", "created_at"])
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_webhook_events_owner", "webhook_events", ["account_id", "mode", "created_at"]
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "webhook_id",
            sa.String(40),
            sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_webhook_deliveries_webhook", "webhook_deliveries", ["webhook_id", "created_at"]
    )
    counters = ["conversations", "messages", "escalations", "ai_tokens", "tts_characters", "stt_ms"]
    op.create_table(
        "activity_daily",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("avatar_id", sa.String(100), nullable=False),
        *[sa.Column(name, sa.Integer, nullable=False) for name in counters],
        sa.PrimaryKeyConstraint("account_id", "mode", "day", "avatar_id"),
    )
    op.create_table(
        "latency_daily",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("bucket", sa.Integer, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "mode", "day", "bucket"),
    )
    op.add_column("messages", sa.Column("latency_ms", sa.Integer, nullable=True))
    op.add_column(
        "conversations", sa.Column("first_message_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "conversations", sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_conversations_analytics",
        "conversations",
        [
            "account_id",
            "mode",
            "created_at",
            "id",
            "message_count",
            "escalated",
            "first_message_at",
            "last_message_at",
        ],
    )
    # Existing conversations: their first and latest message times, then the roll-ups.
    op.execute(
        "UPDATE conversations SET "
        "first_message_at = (SELECT MIN(created_at) FROM messages"
        " WHERE messages.conversation_id = conversations.id), "
        "last_message_at = (SELECT MAX(created_at) FROM messages"
        " WHERE messages.conversation_id = conversations.id)"
    )
    from avatarium.analytics.rollup import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_conversations_analytics", "conversations")
    op.drop_column("conversations", "last_message_at")
    op.drop_column("conversations", "first_message_at")
    op.drop_column("messages", "latency_ms")
    op.drop_table("latency_daily")
    op.drop_table("activity_daily")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_events")
    op.drop_table("webhooks")
