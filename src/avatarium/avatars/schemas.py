"""What ``POST`` and ``PATCH /v1/avatars`` accept, checked into a typed ``AvatarSpec``, and
the wire shape of custom avatars. HTTP bodies stop here: the service takes the spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from avatarium.api.validation import (
    METADATA_SCHEMA,
    Field,
    body_schema,
    check_field,
    check_language,
    validate,
    validate_metadata,
)
from avatarium.core.errors import InvalidParameterError, MissingParameterError

MAX_LIST = 50
TRIGGERS = ("asked_for_human", "negative_sentiment", "failed_answers")
DEFAULT_ESCALATION_MESSAGE = (
    "I'd like to bring in a person from our team who can help you better. "
    "Someone will be with you shortly."
)

ESCALATION_SCHEMA = {
    "properties": {
        "triggers": {
            "type": "array",
            "minItems": 1,
            "items": {
                "anyOf": [
                    {"type": "string", "enum": list(TRIGGERS)},
                    {
                        "type": "object",
                        "properties": {"keywords": {"type": "array", "items": {"type": "string"}}},
                        "required": ["keywords"],
                        "additionalProperties": False,
                    },
                ]
            },
        },
        "message": {"type": "string", "maxLength": 500},
    },
    "required": ["triggers"],
    "additionalProperties": False,
}
APPEARANCE_SCHEMA = {
    "description": 'A preset\'s face, {"preset": "<preset id>"}, or {"model_url": "https://..."}.',
    "minProperties": 1,
    "maxProperties": 1,
    "properties": {"preset": {"type": "string"}, "model_url": {"type": "string"}},
    "additionalProperties": False,
}

AVATAR_FIELDS = [
    Field("name", str, not_blank=True, max_length=100),
    Field("description", str, max_length=500),
    Field("personality", str, not_blank=True, max_length=2_000),
    Field("greeting", str, not_blank=True, max_length=500),
    Field(
        "traits", list, schema={"items": {"type": "string", "maxLength": 100}, "maxItems": MAX_LIST}
    ),
    Field("tone", str, not_blank=True, max_length=100),
    Field("language", str, not_blank=True, max_length=35),
    Field(
        "voices",
        dict,
        schema={"additionalProperties": {"type": "string"}},
        description="Speech provider -> voice id.",
    ),
    Field("ai_provider", str, not_blank=True, max_length=40),
    Field("ai_model", str, not_blank=True, max_length=200),
    Field("tts_provider", str, not_blank=True, max_length=40),
    Field("stt_provider", str, not_blank=True, max_length=40),
    Field(
        "topics_to_avoid",
        list,
        schema={"items": {"type": "string", "maxLength": 200}, "maxItems": MAX_LIST},
    ),
    Field("escalation", dict, schema=ESCALATION_SCHEMA),
    Field("appearance", dict, schema=APPEARANCE_SCHEMA),
    Field("metadata", dict, schema=METADATA_SCHEMA),
]


@dataclass(frozen=True)
class AvatarSpec:
    """Checked avatar fields: those the request set (PATCH replaces only those; nested
    objects whole), ``None`` for one it cleared."""

    values: dict[str, Any] = field(default_factory=dict)


def _strings(value: list[Any], name: str, max_length: int) -> list[str]:
    if len(value) > MAX_LIST:
        raise InvalidParameterError(
            name, "too_long", f"{name} holds at most {MAX_LIST} items.", max_length=MAX_LIST
        )
    for index, item in enumerate(value):
        check_field(Field(name, str, not_blank=True, max_length=max_length), item,
                    path=f"{name}[{index}]")  # fmt: skip
    return [str(item).strip() for item in value]


def _escalation(value: dict[str, Any]) -> dict[str, Any]:
    allowed = {"triggers", "message"}
    for key in value:
        if key not in allowed:
            raise InvalidParameterError(
                f"escalation.{key}", "unknown_field", f"escalation.{key} is not recognised."
            )
    triggers = value.get("triggers")
    if not isinstance(triggers, list) or not triggers:
        raise InvalidParameterError(
            "escalation.triggers", "invalid_type", "escalation.triggers must be a list of "
            "triggers: asked_for_human, negative_sentiment, failed_answers or "
            '{"keywords": [...]}.',
        )  # fmt: skip
    clean: list[Any] = []
    for index, trigger in enumerate(triggers):
        path = f"escalation.triggers[{index}]"
        if isinstance(trigger, str):
            if trigger not in TRIGGERS:
                raise InvalidParameterError(
                    path, "not_allowed", f"{path} must be one of: {', '.join(TRIGGERS)}, "
                    "or {\"keywords\": [...]}.", allowed=[*TRIGGERS, "keywords"],
                )  # fmt: skip
            clean.append(trigger)
        elif isinstance(trigger, dict) and set(trigger) == {"keywords"}:
            words = trigger["keywords"]
            if not isinstance(words, list) or not words:
                raise InvalidParameterError(
                    f"{path}.keywords", "invalid_type", "keywords must be a list of strings."
                )
            clean.append({"keywords": _strings(words, f"{path}.keywords", 100)})
        else:
            raise InvalidParameterError(
                path, "invalid_type", f'{path} must be a trigger name or {{"keywords": [...]}}.'
            )
    message = value.get("message", DEFAULT_ESCALATION_MESSAGE)
    check_field(Field("escalation.message", str, not_blank=True, max_length=500), message)
    return {"triggers": clean, "message": message}


def _voices(value: dict[str, Any], known: list[str]) -> dict[str, str]:
    for provider, voice in value.items():
        if provider not in known:
            raise InvalidParameterError(
                f"voices.{provider}", "not_allowed",
                f"voices keys are speech providers: {', '.join(known)}.", allowed=known,
            )  # fmt: skip
        check_field(Field("voice", str, not_blank=True, max_length=200), voice,
                    path=f"voices.{provider}")  # fmt: skip
    return {str(k): str(v) for k, v in value.items()}


def _appearance(value: dict[str, Any], presets: list[str]) -> dict[str, str]:
    if set(value) == {"preset"} and isinstance(value["preset"], str):
        if value["preset"] not in presets:
            raise InvalidParameterError(
                "appearance.preset", "not_allowed", "appearance.preset names a preset avatar.",
                allowed=presets,
            )  # fmt: skip
        return {"preset": value["preset"]}
    if set(value) == {"model_url"} and isinstance(value["model_url"], str):
        url = value["model_url"]
        if not url.startswith(("https://", "http://")) or len(url) > 2_000:
            raise InvalidParameterError(
                "appearance.model_url", "invalid_type",
                "appearance.model_url must be an http(s) URL of at most 2,000 characters.",
            )  # fmt: skip
        return {"model_url": url}
    raise InvalidParameterError(
        "appearance", "invalid_type",
        'appearance is {"preset": "<preset id>"} or {"model_url": "https://…"}.',
    )  # fmt: skip


def avatar_body_schema(*, creating: bool) -> dict[str, Any]:
    """The documented body of ``POST`` (``name`` required) and ``PATCH`` (null clears a
    field) ``/v1/avatars``."""
    schema = body_schema(AVATAR_FIELDS)
    if creating:
        schema["required"] = ["name"]
    else:
        schema["properties"] = {
            name: prop if name == "name" else {"anyOf": [prop, {"type": "null"}]}
            for name, prop in schema["properties"].items()
        }
    return schema


def parse_avatar(
    body: dict[str, Any], *, creating: bool, tts_names: list[str], presets: list[str]
) -> AvatarSpec:
    """Check a create or update body; providers are checked by the service (they need the
    caller's mode)."""
    if body.get("name") is None and (creating or "name" in body):  # it cannot be cleared
        raise MissingParameterError("name")
    fields = validate(body, AVATAR_FIELDS)
    if "traits" in fields:
        fields["traits"] = _strings(fields["traits"], "traits", 100)
    if "topics_to_avoid" in fields:
        fields["topics_to_avoid"] = _strings(fields["topics_to_avoid"], "topics_to_avoid", 200)
    if "language" in fields:
        check_language(fields["language"])
    if "voices" in fields:
        fields["voices"] = _voices(fields["voices"], tts_names)
    if "escalation" in fields:
        fields["escalation"] = _escalation(fields["escalation"])
    if "appearance" in fields:
        fields["appearance"] = _appearance(fields["appearance"], presets)
    if "metadata" in fields:
        fields["metadata"] = validate_metadata(fields["metadata"])
    # PATCH may clear an optional field with null.
    cleared = {k: None for k, v in body.items() if v is None and k != "name"}
    return AvatarSpec({**cleared, **fields})
