"""Safety: escalated conversations, and the action a reply records.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "conversations",
        sa.Column("escalated", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("conversations", sa.Column("escalation_reason", sa.String(40), nullable=True))
    # {action: "topic_blocked", topic} or {action: "escalated", trigger, ...}.
    op.add_column("messages", sa.Column("safety", sa.JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "safety")
    op.drop_column("conversations", "escalation_reason")
    op.drop_column("conversations", "escalated")
