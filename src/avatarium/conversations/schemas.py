"""Wire shapes of conversations and messages, and the fields their requests accept."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from avatarium.api.validation import (
    METADATA_SCHEMA,
    Field,
    Query,
    check_language,
    validate,
    validate_metadata,
)
from avatarium.conversations.models import Conversation, Message
from avatarium.core.clock import rfc3339
from avatarium.core.errors import InvalidParameterError
from avatarium.providers.byok import ByokKey, parse_byok
from avatarium.providers.registry import ProviderRegistry
from avatarium.speech.models import AudioClip
from avatarium.speech.service import SpeechService
from avatarium.usage.ledger import stt_seconds

MAX_CONTENT = 5_000
MAX_SYSTEM_PROMPT = 2_000

CREATE_FIELDS = [
    Field("avatar_id", str, required=True, not_blank=True, max_length=100),
    Field("ai_provider", str, not_blank=True, max_length=40),
    Field("tts_provider", str, not_blank=True, max_length=40),
    Field("voice_id", str, not_blank=True, max_length=200),
    Field("model", str, not_blank=True, max_length=200),
    Field("system_prompt", str, not_blank=True, max_length=MAX_SYSTEM_PROMPT),
    Field("metadata", dict, schema=METADATA_SCHEMA),
    Field("byok", dict),
    Field("stt_provider", str, not_blank=True, max_length=40),
    Field("language", str, not_blank=True, max_length=35),
]

SEND_FIELDS = [
    Field("content", str, required=True, not_blank=True, max_length=MAX_CONTENT),
    Field("stream", bool),
    Field("tts", bool),
]

CLIENT_TOKEN_FIELDS = [Field("expires_in", int, minimum=10, maximum=86_400)]

STATUS = Query("status", allowed=("active", "idle", "ended"), description="Only these.")
AVATAR_ID = Query("avatar_id", description="Only conversations with this avatar.")
ORDER = Query("order", allowed=("asc", "desc"), default="asc", description="By time.")


@dataclass(frozen=True)
class NewConversation:
    """A checked ``POST /v1/conversations`` body (providers are checked by the service,
    which knows the caller's mode)."""

    avatar_id: str
    ai_provider: str | None = None
    tts_provider: str | None = None
    voice_id: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    stt_provider: str | None = None
    language: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    byok: ByokKey | None = None


def parse_new_conversation(body: Mapping[str, Any], registry: ProviderRegistry) -> NewConversation:
    """Check a create body in the documented order: the fields, then ``metadata``, then
    ``byok`` (which must name the same provider as ``ai_provider``), then ``language``."""
    fields = validate(body, CREATE_FIELDS)
    metadata = validate_metadata(fields.pop("metadata")) if "metadata" in fields else {}
    byok = parse_byok(fields.pop("byok"), registry) if "byok" in fields else None
    if byok is not None and fields.get("ai_provider", byok.provider) != byok.provider:
        raise InvalidParameterError(
            "byok.provider",
            "not_allowed",
            "byok.provider must match ai_provider.",
            allowed=[fields["ai_provider"]],
        )
    if "language" in fields:
        check_language(fields["language"])
    return NewConversation(**fields, metadata=metadata, byok=byok)


def status_of(conversation: Conversation, now: datetime, idle_after_s: int) -> str:
    """``ended``, ``idle`` (no message for a while) or ``active``."""
    if conversation.status == "ended":
        return "ended"
    if now - conversation.updated_at >= timedelta(seconds=idle_after_s):
        return "idle"
    return "active"


def conversation_json(
    conversation: Conversation, now: datetime, idle_after_s: int
) -> dict[str, Any]:
    """The conversation object (without messages)."""
    body: dict[str, Any] = {
        "id": conversation.id,
        "object": "conversation",
        "avatar_id": conversation.avatar_id,
        "status": status_of(conversation, now, idle_after_s),
        "created_at": rfc3339(conversation.created_at),
        "updated_at": rfc3339(conversation.updated_at),
        "config": {
            "ai_provider": conversation.ai_provider,
            "tts_provider": conversation.tts_provider,
            "voice_id": conversation.voice_id,
            "model": conversation.model,
            "stt_provider": conversation.stt_provider,
            "language": conversation.language,
            "sandbox": conversation.mode == "test",
        },
        "byok_enabled": conversation.byok_secret is not None,
        # Handed over to a person by an escalation trigger *(section 9)*.
        "escalated": bool(conversation.escalated),
        "escalation_reason": conversation.escalation_reason,
        "metadata": dict(conversation.metadata_ or {}),
        "message_count": conversation.message_count,
        "usage": {
            "ai_tokens": conversation.ai_tokens,
            "tts_characters": conversation.tts_characters,
            "stt_seconds": stt_seconds(conversation.stt_ms or 0),
        },
    }
    if conversation.ended_at is not None:
        body["ended_at"] = rfc3339(conversation.ended_at)
    return body


def message_event(
    conversation: Conversation,
    message: Message,
    clip: AudioClip | None,
    speech: SpeechService,
    base_url: str,
) -> dict[str, Any]:
    """The ``data`` of a ``message.created`` event."""
    return {
        "conversation_id": conversation.id,
        "avatar_id": conversation.avatar_id,
        "message": message_json(message, clip, speech, base_url),
    }


def message_json(
    message: Message, clip: AudioClip | None, speech: SpeechService, base_url: str
) -> dict[str, Any]:
    """The message object; a stored clip gets a freshly signed URL on every read."""
    audio = speech.audio_json(base_url, clip) if clip is not None else None
    body: dict[str, Any] = {
        "id": message.id,
        "object": "message",
        "conversation_id": message.conversation_id,
        "role": message.role,
        "content": message.content,
        "audio_url": audio["url"] if audio else None,
        "audio": audio,
        "reply_to": message.reply_to,
        "created_at": rfc3339(message.created_at),
        "usage": {
            "ai_tokens": message.ai_tokens,
            "tts_characters": message.tts_characters,
            "stt_seconds": stt_seconds(message.stt_ms or 0),
        },
    }
    if message.input is not None:
        body["input"] = dict(message.input)
    if message.role == "assistant":
        body["interrupted"] = bool(message.interrupted)
        # The knowledge the reply was grounded in *(extension, section 9)*.
        body["sources"] = list(message.sources or [])
        body["safety"] = dict(message.safety) if message.safety else None
        # Which providers actually answered (they differ from the conversation's after a
        # fallback) *(extension)*.
        body["ai_provider"] = message.ai_provider
        body["tts_provider"] = message.tts_provider
    if message.speech is not None:
        body["speech"] = dict(message.speech)
    return body
