"""Initial schema: accounts, keys, conversations, messages, audio, idempotent responses.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tier", sa.String(20), nullable=False),
        sa.Column("rpm_limit", sa.Integer, nullable=True),
        sa.Column("concurrent_limit", sa.Integer, nullable=True),
        sa.Column("monthly_messages_limit", sa.Integer, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("name", name="uq_accounts_name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("prefix", sa.String(20), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_api_keys_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_account_id", "api_keys", ["account_id"])
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("avatar_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("ai_provider", sa.String(40), nullable=False),
        sa.Column("tts_provider", sa.String(40), nullable=False),
        sa.Column("voice_id", sa.String(200), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("system_prompt", sa.Text, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("byok_secret", sa.Text, nullable=True),
        sa.Column("message_count", sa.Integer, nullable=False),
        sa.Column("ai_tokens", sa.Integer, nullable=False),
        sa.Column("tts_characters", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_conversations_account_id_accounts",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_conversations_owner_created", "conversations", ["account_id", "mode", "created_at"]
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("conversation_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("reply_to", sa.String(40), nullable=True),
        sa.Column("audio_id", sa.String(40), nullable=True),
        sa.Column("speech", sa.JSON, nullable=True),
        sa.Column("ai_provider", sa.String(40), nullable=True),
        sa.Column("ai_tokens", sa.Integer, nullable=False),
        sa.Column("tts_characters", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_messages_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_id"),
    )
    op.create_table(
        "audio_clips",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("conversation_id", sa.String(40), nullable=True),
        sa.Column("storage_key", sa.String(300), nullable=False),
        sa.Column("byte_size", sa.Integer, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("visemes", sa.JSON, nullable=True),
        sa.Column("words", sa.JSON, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audio_clips"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_audio_clips_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_audio_clips_conversation_id_conversations",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_audio_clips_conversation_id", "audio_clips", ["conversation_id"])
    op.create_table(
        "idempotent_responses",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("endpoint", sa.String(300), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_idempotent_responses"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_idempotent_responses_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "account_id",
            "mode",
            "idempotency_key",
            "endpoint",
            name="uq_idempotent_responses_account_id",
        ),
    )


def downgrade() -> None:
    for table in (
        "idempotent_responses",
        "audio_clips",
        "messages",
        "conversations",
        "api_keys",
        "accounts",
    ):
        op.drop_table(table)
