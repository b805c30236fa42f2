"""The API's calls, described once; the sync and async clients run the same descriptions."""

from __future__ import annotations

from typing import Any

from avatarium_client._core import Call, body_without_nones
from avatarium_client.models import (
    Avatar,
    ClientToken,
    Conversation,
    Message,
    Page,
    Speech,
    Usage,
    Voice,
)


def _page(parse: Any) -> Any:
    def read(data: dict[str, Any]) -> Page[Any]:
        return Page([parse(item) for item in data["data"]], data["has_more"], data["next_cursor"])

    return read


def _speech(answer: tuple[bytes, dict[str, str]]) -> Speech:
    content, headers = answer
    return Speech(
        content,
        int(headers.get("x-tts-characters", "0")),
        int(headers.get("x-audio-duration-ms", "0")),
    )


def list_avatars() -> Call[list[Avatar]]:
    return Call("GET", "/v1/avatars", lambda d: [Avatar.from_json(a) for a in d["data"]])


def get_avatar(avatar_id: str) -> Call[Avatar]:
    return Call("GET", f"/v1/avatars/{avatar_id}", Avatar.from_json)


def create_conversation(avatar_id: str, **options: Any) -> Call[Conversation]:
    return Call(
        "POST",
        "/v1/conversations",
        Conversation.from_json,
        json=body_without_nones(avatar_id=avatar_id, **options),
        idempotent_key=True,
    )


def list_conversations(
    limit: int | None = None, starting_after: str | None = None, **filters: Any
) -> Call[Page[Conversation]]:
    params = {"limit": limit, "starting_after": starting_after, **filters}
    return Call("GET", "/v1/conversations", _page(Conversation.from_json), params=params)


def get_conversation(conversation_id: str) -> Call[Conversation]:
    return Call("GET", f"/v1/conversations/{conversation_id}", Conversation.from_json)


def delete_conversation(conversation_id: str) -> Call[dict[str, Any]]:
    return Call("DELETE", f"/v1/conversations/{conversation_id}", dict)


def end_conversation(conversation_id: str) -> Call[Conversation]:
    return Call("POST", f"/v1/conversations/{conversation_id}/end", Conversation.from_json)


def client_token(conversation_id: str, expires_in: int | None = None) -> Call[ClientToken]:
    return Call(
        "POST",
        f"/v1/conversations/{conversation_id}/client_tokens",
        ClientToken.from_json,
        json=body_without_nones(expires_in=expires_in),
    )


def send_message(conversation_id: str, content: str, tts: bool | None = None) -> Call[Message]:
    return Call(
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        Message.from_json,
        json=body_without_nones(content=content, tts=tts),
        idempotent_key=True,
    )


def stream_message(conversation_id: str, content: str, tts: bool | None = None) -> Call[None]:
    return Call(
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        lambda _d: None,
        json=body_without_nones(content=content, tts=tts, stream=True),
    )


def list_messages(
    conversation_id: str,
    limit: int | None = None,
    starting_after: str | None = None,
    order: str | None = None,
) -> Call[Page[Message]]:
    params = {"limit": limit, "starting_after": starting_after, "order": order}
    return Call(
        "GET",
        f"/v1/conversations/{conversation_id}/messages",
        _page(Message.from_json),
        params=params,
    )


def get_message(conversation_id: str, message_id: str) -> Call[Message]:
    return Call(
        "GET", f"/v1/conversations/{conversation_id}/messages/{message_id}", Message.from_json
    )


def speak(text: str, voice: str | None = None, provider: str | None = None) -> Call[Speech]:
    body = body_without_nones(text=text, voice=voice, provider=provider)
    return Call("POST", "/v1/tts", _speech, json=body, binary=True)


def preview_voice(voice: str, provider: str | None = None) -> Call[Speech]:
    body = body_without_nones(voice=voice, provider=provider)
    return Call("POST", "/v1/tts/preview", _speech, json=body, binary=True)


def list_voices(provider: str | None = None) -> Call[list[Voice]]:
    return Call(
        "GET",
        "/v1/tts/voices",
        lambda d: [Voice.from_json(v) for v in d["data"]],
        params={"provider": provider},
    )


def get_usage() -> Call[Usage]:
    return Call("GET", "/v1/usage", Usage.from_json)
