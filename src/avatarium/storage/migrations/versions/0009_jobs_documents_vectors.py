"""Durable background jobs; uploaded documents awaiting processing; a vector per chunk;
a knowledge revision per avatar; failed answers in a row; recorded safety actions.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_by", sa.String(64), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_jobs_status_run_after", "jobs", ["status", "run_after"])
    # An item's raw content until its job has processed it (a document, or a long text).
    op.create_table(
        "knowledge_uploads",
        sa.Column(
            "knowledge_id",
            sa.String(40),
            sa.ForeignKey("knowledge.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("format", sa.String(10), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    # float32 little-endian, unit length; the space names the model that made it.
    op.add_column("knowledge_chunks", sa.Column("embedding", sa.LargeBinary, nullable=True))
    op.add_column("knowledge_chunks", sa.Column("embedding_space", sa.String(80), nullable=True))
    # Bumped with every change to an avatar's knowledge: cached vector indexes key on it.
    op.add_column(
        "avatars",
        sa.Column("knowledge_revision", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column(
        "conversations",
        sa.Column("failed_answers", sa.Integer, nullable=False, server_default="0"),
    )
    # Every safety action, for the webhooks that emit them (section 10).
    op.create_table(
        "safety_events",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("avatar_id", sa.String(100), nullable=False),
        sa.Column(
            "conversation_id",
            sa.String(40),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("message_id", sa.String(40), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_safety_events_account_created", "safety_events", ["account_id", "mode", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("safety_events")
    op.drop_column("conversations", "failed_answers")
    op.drop_column("avatars", "knowledge_revision")
    op.drop_column("knowledge_chunks", "embedding_space")
    op.drop_column("knowledge_chunks", "embedding")
    op.drop_table("knowledge_uploads")
    op.drop_index("ix_jobs_status_run_after", "jobs")
    op.drop_table("jobs")
