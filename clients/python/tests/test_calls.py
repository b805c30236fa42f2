"""Every call of the sync and async clients against a real server process."""

from __future__ import annotations

import secrets

import pytest

from avatarium_client import (
    AsyncAvatarium,
    AudioChunk,
    AuthenticationError,
    Avatarium,
    Done,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    TextDelta,
)
from conftest import Server


def account() -> str:
    return f"client-{secrets.token_hex(4)}"


def test_every_call(server: Server) -> None:
    with Avatarium(server.key(account()), base_url=server.url) as client:
        avatars = client.avatars.list()
        assert "aria-001" in [a.id for a in avatars]
        assert client.avatars.get("aria-001").name
        conversation = client.conversations.create("aria-001", metadata={"user": "u1"})
        assert conversation.id.startswith("conv_") and conversation.metadata == {"user": "u1"}
        assert client.conversations.get(conversation.id).id == conversation.id
        page = client.conversations.list(limit=5)
        assert conversation.id in [c.id for c in page.data]
        reply = client.messages.send(conversation.id, "Hello there!")
        assert reply.role == "assistant" and reply.content and reply.audio is not None
        assert reply.audio.duration_ms > 0 and reply.ai_tokens > 0
        listed = client.messages.list(conversation.id)
        assert [m.role for m in listed.data] == ["user", "assistant"]
        assert client.messages.get(conversation.id, reply.id).content == reply.content
        token = client.conversations.client_token(conversation.id, expires_in=60)
        assert token.token.startswith("ct_")
        speech = client.tts.speak("Hello from the client.")
        assert speech.audio[:2] in (b"\xff\xf3", b"\xff\xfb", b"ID") and speech.characters == 22
        assert client.tts.preview("en-us").audio
        assert "en-us" in [v.id for v in client.tts.voices(provider="espeak")]
        usage = client.usage.get()
        assert usage.messages_used >= 1 and usage.tier == "enterprise"
        ended = client.conversations.end(conversation.id)
        assert ended.status == "ended"
        assert client.conversations.delete(conversation.id)["deleted"] is True


def test_errors_are_typed_with_code_details_and_request_id(server: Server) -> None:
    with Avatarium(server.key(account()), base_url=server.url) as client:
        with pytest.raises(NotFoundError) as missing:
            client.conversations.get("conv_0000000000000000")
        assert missing.value.status == 404 and missing.value.code == "conversation_not_found"
        assert missing.value.request_id and missing.value.request_id.startswith("req_")
        conversation = client.conversations.create("aria-001")
        with pytest.raises(InvalidRequestError) as bad:
            client.messages.send(conversation.id, "   ")
        assert bad.value.details == {"field": "content", "reason": "empty"}
        assert "invalid_parameter" in str(bad.value) and bad.value.request_id in str(bad.value)
        token = client.conversations.client_token(conversation.id).token
    with Avatarium(token, base_url=server.url) as scoped, pytest.raises(PermissionDeniedError):
        scoped.usage.get()
    with Avatarium("av_test_" + "0" * 32, base_url=server.url) as wrong:
        with pytest.raises(AuthenticationError) as denied:
            wrong.usage.get()
        assert denied.value.code == "invalid_api_key"


def test_streaming_yields_typed_events_ending_in_done(server: Server) -> None:
    with Avatarium(server.key(account()), base_url=server.url) as client:
        conversation = client.conversations.create("aria-001")
        events = list(client.messages.stream(conversation.id, "Tell me about the sea."))
        assert isinstance(events[0], TextDelta) and isinstance(events[-1], Done)
        text = "".join(e.delta for e in events if isinstance(e, TextDelta))
        assert events[-1].message.content == text.strip()
        chunks = [e for e in events if isinstance(e, AudioChunk)]
        assert chunks and [c.index for c in chunks] == list(range(len(chunks)))
        stored = client.messages.get(conversation.id, events[-1].message.id)
        assert stored.content == events[-1].message.content


def test_websocket_session_by_key_and_by_client_token(server: Server) -> None:
    with Avatarium(server.key(account()), base_url=server.url) as client:
        conversation = client.conversations.create("aria-001")
        with client.conversations.connect(conversation.id) as socket:
            for content in ("Hi!", "And again."):
                events = list(socket.send(content))
                assert isinstance(events[-1], Done)
            socket.ping()
        token = client.conversations.client_token(conversation.id).token
        with client.conversations.connect(conversation.id, token=token) as socket:
            assert isinstance(list(socket.send("From a token."))[-1], Done)
        assert len(client.messages.list(conversation.id).data) == 6
        with pytest.raises(NotFoundError):
            client.conversations.connect("conv_0000000000000000")
    wrong = Avatarium("av_test_" + "0" * 32, base_url=server.url)
    with wrong, pytest.raises(AuthenticationError):
        wrong.conversations.connect(conversation.id)


async def test_the_async_client(server: Server) -> None:
    async with AsyncAvatarium(server.key(account()), base_url=server.url) as client:
        assert await client.avatars.list()
        conversation = await client.conversations.create("aria-001")
        reply = await client.messages.send(conversation.id, "Hello!")
        assert reply.content
        events = [e async for e in client.messages.stream(conversation.id, "More, please.")]
        assert isinstance(events[-1], Done)
        socket = await client.conversations.connect(conversation.id)
        async with socket:
            turn = [e async for e in socket.send("And over a socket?")]
            assert isinstance(turn[-1], Done)
            await socket.ping()
        page = await client.messages.list(conversation.id, order="desc")
        assert page.data[0].id == turn[-1].message.id
        assert (await client.usage.get()).messages_used == 3
        with pytest.raises(NotFoundError):
            await client.messages.get(conversation.id, "msg_0000000000000000")
        assert (await client.tts.speak("Hi.")).audio
