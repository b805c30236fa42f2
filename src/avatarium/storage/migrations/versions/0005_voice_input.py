"""Voice input: how a user message was given, interrupted replies, speech-to-text usage.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A spoken user message: {type: "audio", duration_ms, stt_provider, language}.
    op.add_column("messages", sa.Column("input", sa.JSON, nullable=True))
    # A reply cut short by the user speaking over it (barge-in).
    op.add_column(
        "messages",
        sa.Column("interrupted", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    # Milliseconds of audio transcribed; the API reports seconds to 0.1.
    for table in ("messages", "conversations", "usage_periods"):
        op.add_column(table, sa.Column("stt_ms", sa.Integer, nullable=False, server_default="0"))
    op.add_column("conversations", sa.Column("stt_provider", sa.String(40), nullable=True))
    op.add_column("conversations", sa.Column("language", sa.String(35), nullable=True))


def downgrade() -> None:
    op.drop_column("conversations", "language")
    op.drop_column("conversations", "stt_provider")
    for table in ("usage_periods", "conversations", "messages"):
        op.drop_column(table, "stt_ms")
    op.drop_column("messages", "interrupted")
    op.drop_column("messages", "input")
