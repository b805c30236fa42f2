"""Leases on Idempotency-Key claims; estimated model tokens in usage.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A claim in progress is abandoned once its lease lapses (a crashed worker stops renewing).
    op.add_column(
        "idempotent_responses",
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    # Of ai_tokens, how many were estimated from the text (a cloud reply cancelled before the
    # vendor reported its usage).
    op.add_column(
        "usage_periods",
        sa.Column("ai_tokens_estimated", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("usage_periods", "ai_tokens_estimated")
    op.drop_column("idempotent_responses", "lease_expires_at")
