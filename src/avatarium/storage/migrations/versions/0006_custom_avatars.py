"""Avatars an account creates.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "avatars",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "account_id",
            sa.String(40),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("personality", sa.Text, nullable=True),
        sa.Column("greeting", sa.Text, nullable=True),
        sa.Column("traits", sa.JSON, nullable=False),
        sa.Column("tone", sa.String(100), nullable=True),
        sa.Column("language", sa.String(35), nullable=True),
        sa.Column("voices", sa.JSON, nullable=False),
        sa.Column("ai_provider", sa.String(40), nullable=True),
        sa.Column("ai_model", sa.String(200), nullable=True),
        sa.Column("tts_provider", sa.String(40), nullable=True),
        sa.Column("stt_provider", sa.String(40), nullable=True),
        sa.Column("topics_to_avoid", sa.JSON, nullable=False),
        sa.Column("escalation", sa.JSON, nullable=True),
        sa.Column("appearance", sa.JSON, nullable=True),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_avatars_owner_created", "avatars", ["account_id", "mode", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_avatars_owner_created", "avatars")
    op.drop_table("avatars")
