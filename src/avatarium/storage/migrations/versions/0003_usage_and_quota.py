"""Monthly usage counters and quota reservations.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_periods",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("messages_used", sa.Integer, nullable=False),
        sa.Column("ai_tokens", sa.Integer, nullable=False),
        sa.Column("tts_characters", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "period", name="pk_usage_periods"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_usage_periods_account_id_accounts",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "quota_reservations",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quota_reservations"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_quota_reservations_account_id_accounts",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_quota_reservations_account_period", "quota_reservations", ["account_id", "period"]
    )


def downgrade() -> None:
    op.drop_table("quota_reservations")
    op.drop_table("usage_periods")
