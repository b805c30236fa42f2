"""The conversation WebSocket (SPEC section 5): turns, cancel, errors, auth and close codes."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from avatarium.providers.errors import FailureCategory, ProviderError
from tests.asgi_live import LiveSocket, open_socket
from tests.support import Api, HeldLLM, register_held


def ws_path(conversation_id: str, token: str | None = None) -> str:
    path = f"/v1/conversations/{conversation_id}/ws"
    return f"{path}?token={token}" if token else path


async def connect(api: Api, conversation_id: str, key: str) -> LiveSocket:
    socket = open_socket(api.app, ws_path(conversation_id), api.auth(key))
    assert await socket.receive() == {"type": "ready", "conversation_id": conversation_id}
    return socket


async def messages(api: Api, key: str, conversation_id: str) -> list[dict[str, Any]]:
    response = await api.client.get(
        f"/v1/conversations/{conversation_id}/messages", headers=api.auth(key)
    )
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def held(api: Api, hold_after: int | None = None) -> HeldLLM:
    return register_held(api, ["Hello ", "there. ", "How ", "are ", "you ", "today?"], hold_after)


async def test_two_turns_on_one_socket(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    socket = await connect(api, conversation["id"], key)
    replies = []
    for content in ("Hi there!", "Tell me more."):
        await socket.send({"type": "message", "content": content})
        frames = await socket.until("done", "error")
        kinds = [f["type"] for f in frames]
        assert kinds[-1] == "done", frames[-1]
        assert kinds[0] == "message.delta" and "audio" in kinds
        text = "".join(f["delta"] for f in frames if f["type"] == "message.delta")
        assert frames[-1]["content"] == text.strip()
        audio = [f for f in frames if f["type"] == "audio"]
        assert [a["index"] for a in audio] == list(range(len(audio)))
        replies.append(frames[-1]["id"])
    await socket.send({"type": "ping"})
    assert await socket.receive() == {"type": "pong"}
    await socket.close()
    stored = await messages(api, key, conversation["id"])
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert [m["id"] for m in stored if m["role"] == "assistant"] == replies


async def test_cancel_stops_the_turn_and_stores_nothing(api: Api) -> None:
    key = await api.key(mode="live")
    llm = held(api, hold_after=2)
    conversation = await api.conversation(key, ai_provider=llm.name, tts_provider="espeak")
    socket = await connect(api, conversation["id"], key)
    await socket.send({"type": "message", "content": "Say something long."})
    assert (await socket.receive() or {})["type"] == "message.delta"
    await asyncio.wait_for(llm.holding.wait(), 10)
    await socket.send({"type": "cancel"})
    frames = await socket.until("cancelled", "done", "error")
    assert frames[-1] == {"type": "cancelled"}
    assert llm.stopped_early
    assert await messages(api, key, conversation["id"]) == []
    # The socket is still good for the next turn.
    llm.hold_after = None
    await socket.send({"type": "message", "content": "Again."})
    assert (await socket.until("done", "error"))[-1]["type"] == "done"
    assert len(await messages(api, key, conversation["id"])) == 2
    await socket.close()


async def test_a_failed_turn_keeps_the_socket_open(api: Api) -> None:
    key = await api.key(mode="live")
    llm = held(api)
    llm.fail_first = ProviderError(FailureCategory.RATE_LIMITED, llm.name, "429 from vendor")
    conversation = await api.conversation(key, ai_provider=llm.name, tts_provider="browser")
    socket = await connect(api, conversation["id"], key)
    await socket.send({"type": "message", "content": "First try."})
    error = (await socket.until("done", "error"))[-1]
    assert error["type"] == "error"
    assert error["error"]["code"] == "ai_provider_error"
    assert error["error"]["details"]["reason"] == "rate_limited"
    assert await messages(api, key, conversation["id"]) == []
    await socket.send({"type": "message", "content": "Second try."})
    done = (await socket.until("done", "error"))[-1]
    assert done["type"] == "done" and done["speech"]["provider"] == "browser"
    assert len(await messages(api, key, conversation["id"])) == 2
    await socket.close()


async def test_bad_frames_are_errors_not_disconnects(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    socket = await connect(api, conversation["id"], key)
    cases: list[tuple[Any, str, dict[str, Any] | None]] = [
        ("not json", "invalid_request", None),
        ([1, 2], "invalid_request", None),
        ({"content": "hi"}, "missing_parameter", {"field": "type", "reason": "missing"}),
        ({"type": "shout"}, "invalid_parameter", {"field": "type", "reason": "not_allowed"}),
        ({"type": "message"}, "missing_parameter", {"field": "content", "reason": "missing"}),
        ({"type": "message", "content": " "}, "invalid_parameter", {"field": "content"}),
        ({"type": "message", "content": "x", "tts": "yes"}, "invalid_parameter", {"field": "tts"}),
        ({"type": "message", "content": "x", "mood": 1}, "invalid_parameter", {"field": "mood"}),
    ]
    for frame, code, details in cases:
        await socket.send(frame)
        reply = await socket.receive()
        assert reply is not None and reply["type"] == "error", (frame, reply)
        assert reply["error"]["code"] == code, (frame, reply)
        for name, value in (details or {}).items():
            assert reply["error"]["details"][name] == value
    await socket.send({"type": "ping"})
    assert await socket.receive() == {"type": "pong"}
    await socket.close()


async def test_a_second_message_during_a_turn_is_refused(api: Api) -> None:
    key = await api.key(mode="live")
    llm = held(api, hold_after=1)
    conversation = await api.conversation(key, ai_provider=llm.name, tts_provider="browser")
    socket = await connect(api, conversation["id"], key)
    await socket.send({"type": "message", "content": "One."})
    await asyncio.wait_for(llm.holding.wait(), 10)
    await socket.send({"type": "message", "content": "Two."})
    frames = await socket.until("error")
    assert frames[-1]["error"]["details"]["reason"] == "turn_in_progress"
    llm.resume.set()
    assert (await socket.until("done"))[-1]["content"] == "Hello there. How are you today?"
    await socket.close()


async def test_auth_by_header_and_by_client_token(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    socket = await connect(api, conversation["id"], key)
    await socket.close()
    token = await client_token(api, key, conversation["id"])
    socket = open_socket(api.app, ws_path(conversation["id"], token))
    assert (await socket.receive() or {})["type"] == "ready"
    await socket.send({"type": "message", "content": "Hi from a browser."})
    assert (await socket.until("done", "error"))[-1]["type"] == "done"
    await socket.close()


async def client_token(api: Api, key: str, conversation_id: str, **body: Any) -> str:
    response = await api.client.post(
        f"/v1/conversations/{conversation_id}/client_tokens", json=body, headers=api.auth(key)
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


async def refused(api: Api, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    socket = open_socket(api.app, path, headers)
    frame = await socket.receive()
    assert frame is not None and frame["type"] == "error", frame
    assert await socket.receive() is None
    assert socket.close_code is not None
    assert socket.close_reason == frame["error"]["code"]
    return socket.close_code, frame["error"]["code"]


async def test_close_codes(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    other = await api.conversation(key)
    cid = conversation["id"]
    read_only = await api.key(scope="read")  # permission is checked before the lookup
    assert await refused(api, ws_path(cid)) == (4401, "missing_api_key")
    bad = {"Authorization": "Bearer av_test_" + "x" * 32}
    assert await refused(api, ws_path(cid), bad) == (4401, "invalid_api_key")
    assert await refused(api, ws_path(cid, "ct_forged.sig")) == (4401, "invalid_api_key")
    token = await client_token(api, key, other["id"])
    assert await refused(api, ws_path(cid, token)) == (4403, "insufficient_permissions")
    assert await refused(api, ws_path(cid), api.auth(read_only)) == (
        4403,
        "insufficient_permissions",
    )
    assert await refused(api, ws_path("conv_0000000000000000"), api.auth(key)) == (
        4404,
        "conversation_not_found",
    )
    short = await client_token(api, key, cid, expires_in=10)
    api.clock.advance(11)
    assert await refused(api, ws_path(cid, short)) == (4401, "expired_api_key")


async def test_limits_apply_to_every_turn(api: Api) -> None:
    account = f"ws-limits-{secrets.token_hex(3)}"
    key = await api.key(account=account)
    await api.state.accounts.set_limits(account, rpm=3)
    conversation = await api.conversation(key, tts_provider="browser")  # request 1 of 3
    socket = await connect(api, conversation["id"], key)
    for content in ("One.", "Two."):  # requests 2 and 3
        await socket.send({"type": "message", "content": content})
        assert (await socket.until("done", "error"))[-1]["type"] == "done"
    await socket.send({"type": "message", "content": "Three."})
    error = (await socket.until("done", "error"))[-1]
    assert error["error"]["code"] == "rate_limit_exceeded"
    assert error["error"]["details"]["reason"] == "requests_per_minute"
    assert error["retry_after"] >= 1
    await socket.send({"type": "ping"})
    assert await socket.receive() == {"type": "pong"}
    await socket.close()
