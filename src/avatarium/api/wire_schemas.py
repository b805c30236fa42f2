"""JSON Schemas of what the API answers (``components/schemas`` of the OpenAPI document).

Requests are described from the validation specs themselves (:mod:`avatarium.api.validation`);
answers are rendered by each domain's ``*_json`` functions, and these schemas say what those
render. Objects stay open (``additionalProperties`` is not false): a later minor version may
add fields, and clients are told to ignore what they do not know. The Schemathesis run in the
test suite checks real answers against them.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to a schema under ``components/schemas``."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: list[str], **properties: Schema) -> Schema:
    """An object with ``properties``, of which ``required`` must be present."""
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def const(value: str) -> Schema:
    return {"type": "string", "const": value}


def list_of(item: Schema) -> Schema:
    """The paged list envelope every list endpoint answers with."""
    return obj(
        ["object", "data", "has_more", "next_cursor"],
        object=const("list"),
        data={"type": "array", "items": item},
        has_more={"type": "boolean"},
        next_cursor=nullable(STRING),
    )


def deleted(kind: str) -> Schema:
    return obj(["id", "object", "deleted"], id=STRING, object=const(kind), deleted={"const": True})


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
STRINGS: Schema = {"type": "array", "items": STRING}
STRING_MAP: Schema = {"type": "object", "additionalProperties": STRING}
OPEN: Schema = {"type": "object"}

USAGE_COUNTS = obj(
    ["ai_tokens", "tts_characters", "stt_seconds"],
    ai_tokens=INTEGER,
    tts_characters=INTEGER,
    stt_seconds=NUMBER,
)
VISEME = obj(
    ["time_ms", "duration_ms", "viseme"], time_ms=INTEGER, duration_ms=INTEGER, viseme=STRING
)
AUDIO = obj(
    ["url", "format", "duration_ms", "visemes"],
    url=STRING,
    format=const("mp3"),
    duration_ms=INTEGER,
    visemes={"type": "array", "items": VISEME},
    words=nullable({"type": "array", "items": OPEN}),
)

SCHEMAS: dict[str, Schema] = {
    "Conversation": obj(
        [
            "id",
            "object",
            "avatar_id",
            "status",
            "created_at",
            "updated_at",
            "config",
            "metadata",
            "message_count",
            "usage",
        ],
        id=STRING,
        object=const("conversation"),
        avatar_id=STRING,
        status={"type": "string", "enum": ["active", "idle", "ended"]},
        created_at=TIME,
        updated_at=TIME,
        ended_at=TIME,
        config=obj(
            ["ai_provider", "tts_provider", "voice_id", "model", "sandbox"],
            ai_provider=STRING,
            tts_provider=STRING,
            voice_id=nullable(STRING),
            model=nullable(STRING),
            stt_provider=nullable(STRING),
            language=nullable(STRING),
            sandbox=BOOLEAN,
        ),
        byok_enabled=BOOLEAN,
        escalated=BOOLEAN,
        escalation_reason=nullable(STRING),
        metadata=STRING_MAP,
        message_count=INTEGER,
        usage=USAGE_COUNTS,
        messages={"type": "array", "items": ref("Message")},
    ),
    "Message": obj(
        [
            "id",
            "object",
            "conversation_id",
            "role",
            "content",
            "audio_url",
            "audio",
            "created_at",
            "usage",
        ],
        id=STRING,
        object=const("message"),
        conversation_id=STRING,
        role={"type": "string", "enum": ["user", "assistant"]},
        content=STRING,
        audio_url=nullable(STRING),
        audio=nullable(AUDIO),
        reply_to=nullable(STRING),
        created_at=TIME,
        usage=USAGE_COUNTS,
        input=OPEN,
        interrupted=BOOLEAN,
        sources={"type": "array", "items": OPEN},
        safety=nullable(OPEN),
        ai_provider=nullable(STRING),
        tts_provider=nullable(STRING),
        speech=OPEN,
    ),
    "ClientToken": obj(
        ["object", "token", "conversation_id", "expires_at"],
        object=const("client_token"),
        token=STRING,
        conversation_id=STRING,
        expires_at=TIME,
    ),
    "Avatar": obj(
        ["id", "object", "owner", "name", "model_url"],
        id=STRING,
        object=const("avatar"),
        owner={"type": "string", "enum": ["preset", "account"]},
        name=STRING,
        description=nullable(STRING),
        personality=nullable(STRING),
        greeting=nullable(STRING),
        traits=STRINGS,
        tone=nullable(STRING),
        language=nullable(STRING),
        voices=STRING_MAP,
        defaults=OPEN,
        topics_to_avoid=STRINGS,
        escalation=nullable(OPEN),
        appearance=nullable(OPEN),
        metadata=STRING_MAP,
        model_url=STRING,
        thumbnail_url=STRING,
        created_at=TIME,
        updated_at=TIME,
    ),
    "AvatarModel": obj(
        ["avatar_id", "model_url", "format"], avatar_id=STRING, model_url=STRING, format=STRING
    ),
    "Knowledge": obj(
        ["id", "object", "type", "title", "status", "chunks", "characters", "error", "created_at"],
        id=STRING,
        object=const("knowledge"),
        avatar_id=STRING,
        type={"type": "string", "enum": ["text", "qa", "document"]},
        title=STRING,
        status={"type": "string", "enum": ["processing", "ready", "failed"]},
        chunks=INTEGER,
        characters=INTEGER,
        error=nullable(STRING),
        metadata=STRING_MAP,
        created_at=TIME,
    ),
    "Voice": obj(
        ["id", "object", "name", "language", "provider"],
        id=STRING,
        object=const("voice"),
        name=STRING,
        language=STRING,
        gender=STRING,
        provider=STRING,
    ),
    "Transcription": obj(
        ["object", "text", "language", "duration_ms", "stt_provider"],
        object=const("transcription"),
        text=STRING,
        language=nullable(STRING),
        duration_ms=INTEGER,
        words=nullable({"type": "array", "items": OPEN}),
        stt_provider=STRING,
    ),
    "Usage": obj(
        ["object", "period", "tier", "messages", "ai_tokens", "tts_characters", "limits"],
        object=const("usage"),
        period=obj(["start", "end"], start=TIME, end=TIME),
        tier=STRING,
        messages=obj(
            ["used", "limit", "remaining"],
            used=INTEGER,
            limit=nullable(INTEGER),
            remaining=nullable(INTEGER),
        ),
        ai_tokens=INTEGER,
        ai_tokens_estimated=INTEGER,
        tts_characters=INTEGER,
        stt_seconds=NUMBER,
        limits=OPEN,
    ),
    "AnalyticsOverview": obj(
        ["object", "period", "conversations", "messages", "by_day", "top_avatars"],
        object=const("analytics_overview"),
        period=obj(["start", "end"], start=TIME, end=TIME),
        conversations=INTEGER,
        messages=INTEGER,
        avg_duration_s=nullable(NUMBER),
        completion_rate=nullable(NUMBER),
        escalations=INTEGER,
        ai_tokens=INTEGER,
        tts_characters=INTEGER,
        stt_seconds=NUMBER,
        top_avatars={"type": "array", "items": OPEN},
        by_day={"type": "array", "items": OPEN},
    ),
    "Webhook": obj(
        ["id", "object", "url", "events", "enabled", "created_at", "updated_at"],
        id=STRING,
        object=const("webhook"),
        url=STRING,
        events=STRINGS,
        description=nullable(STRING),
        enabled=BOOLEAN,
        disabled_reason=nullable(STRING),
        created_at=TIME,
        updated_at=TIME,
        secret={"type": "string", "description": "Only in the answer to the create."},
    ),
    "WebhookDelivery": obj(
        [
            "id",
            "object",
            "webhook_id",
            "event_id",
            "event_type",
            "attempt",
            "outcome",
            "created_at",
        ],
        id=STRING,
        object=const("webhook_delivery"),
        webhook_id=STRING,
        event_id=STRING,
        event_type=STRING,
        attempt=INTEGER,
        status_code=nullable(INTEGER),
        duration_ms=nullable(INTEGER),
        error=nullable(STRING),
        outcome=STRING,
        created_at=TIME,
    ),
    "WebhookQueued": obj(
        ["object", "webhook_id", "event_id", "status"],
        object={"type": "string", "enum": ["webhook_test", "webhook_retry"]},
        webhook_id=STRING,
        event_id=STRING,
        delivery_id=STRING,
        event_type=STRING,
        status=const("queued"),
    ),
    # One Server-Sent Event of a streamed reply (its data is JSON, see the API docs).
    "ReplyEvent": obj(
        ["event", "data"],
        id=STRING,
        event={"type": "string", "enum": ["message", "audio", "done", "error", "interrupted"]},
        data={"type": "string", "contentMediaType": "application/json"},
    ),
    "Health": obj(["status"], status=STRING, version=STRING, checks=STRING_MAP),
    "Error": obj(
        ["error"],
        error=obj(
            ["code", "message"],
            code=STRING,
            message=STRING,
            details=OPEN,
            request_id=nullable(STRING),
        ),
    ),
}
