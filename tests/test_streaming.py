"""Streamed replies over Server-Sent Events (SPEC section 5), read in real time."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.registry import ProviderSpec
from avatarium.speech.mp3 import mp3_duration_ms
from tests.asgi_live import open_stream
from tests.sse import SSEEvent
from tests.support import (
    Api,
    FailingTTS,
    HeldLLM,
    ScriptedLLM,
    assert_error,
    personality,
    register_held,
)

SENTENCES = ["The sun is a star. ", "It is very hot. ", "Plants need its light to grow."]


def words(text: str) -> list[str]:
    return [piece for sentence in text.split(" ") if (piece := sentence.strip())]


def held(api: Api, hold_after: int | None = None) -> HeldLLM:
    """A model that writes SENTENCES word by word."""
    return register_held(api, [w + " " for s in SENTENCES for w in s.split()], hold_after)


async def stream_send(api: Api, key: str, conversation_id: str, **body: Any) -> Any:
    return await open_stream(
        api.app,
        f"/v1/conversations/{conversation_id}/messages",
        api.auth(key),
        {"content": "Tell me about the sun.", "stream": True, **body},
    )


async def snapshot(api: Api, key: str, conversation_id: str) -> Any:
    response = await api.client.get(f"/v1/conversations/{conversation_id}", headers=api.auth(key))
    body = response.json()
    body.pop("status")
    messages = await api.client.get(
        f"/v1/conversations/{conversation_id}/messages", headers=api.auth(key)
    )
    return body, [m["id"] for m in messages.json()["data"]]


async def test_events_arrive_in_order_with_speech_before_the_model_finishes(api: Api) -> None:
    key = await api.key(mode="live")
    llm = held(api, hold_after=len(SENTENCES[0].split()) + len(SENTENCES[1].split()) + 1)
    conversation = await api.conversation(key, ai_provider=llm.name, tts_provider="espeak")
    stream = await stream_send(api, key, conversation["id"])
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["x-request-id"].startswith("req_")
    assert "x-ratelimit-limit" in stream.headers
    events: list[SSEEvent] = []
    async for event in stream.events():
        events.append(event)
        if event.type == "audio" and not llm.resume.is_set():
            # The client holds speech for the first sentence while the model is still
            # writing (it is waiting for us), which is the point of streaming.
            assert not llm.finished
            assert event.json()["index"] == 0
            llm.resume.set()
    assert llm.finished and llm.resume.is_set()
    ids = [int(e.last_event_id) for e in events]
    assert ids == list(range(1, len(events) + 1))
    kinds = [e.type for e in events]
    assert kinds[-1] == "done" and kinds.count("done") == 1 and "error" not in kinds
    assert set(kinds) == {"message", "audio", "done"}
    text = "".join(e.json()["delta"] for e in events if e.type == "message")
    assert words(text) == words("".join(SENTENCES))
    audio = [e.json() for e in events if e.type == "audio"]
    assert [a["index"] for a in audio] == [0, 1, 2]
    assert [a["text"] for a in audio] == [s.strip() for s in SENTENCES]
    for chunk in audio:
        assert set(chunk) == {"url", "index", "text", "duration_ms", "visemes", "words"}
        assert chunk["duration_ms"] > 0 and chunk["visemes"] and chunk["words"]
    # `done` carries the stored message, exactly as a later read returns it.
    done = events[-1].json()
    assert done["object"] == "message" and done["role"] == "assistant"
    assert words(done["content"]) == words("".join(SENTENCES))
    assert done["usage"]["tts_characters"] == sum(len(a["text"]) for a in audio)
    stored = await api.client.get(
        f"/v1/conversations/{conversation['id']}/messages/{done['id']}", headers=api.auth(key)
    )
    assert stored.json()["content"] == done["content"]
    assert stored.json()["audio"]["words"] == done["audio"]["words"]
    await stream.closed()


async def test_the_stored_audio_is_the_chunks_joined_with_shifted_timings(api: Api) -> None:
    key = await api.key(mode="live")
    llm = held(api)
    conversation = await api.conversation(key, ai_provider=llm.name, tts_provider="espeak")
    stream = await stream_send(api, key, conversation["id"])
    events = [event async for event in stream.events()]
    audio = [e.json() for e in events if e.type == "audio"]
    done = events[-1].json()
    parts = []
    for chunk in audio:
        response = await api.client.get(chunk["url"].removeprefix("http://testserver"))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "audio/mpeg"
        parts.append(response.content)
    whole = await api.client.get(done["audio_url"].removeprefix("http://testserver"))
    assert whole.content == b"".join(parts)
    assert abs(done["audio"]["duration_ms"] - mp3_duration_ms(whole.content)) <= 1
    # Each chunk's words reappear in the whole, moved by the playing time before the chunk.
    offset = 0.0
    expected_words = []
    for chunk, data in zip(audio, parts, strict=True):
        expected_words += [
            {"time_ms": round(w["time_ms"] + offset), "text": w["text"]} for w in chunk["words"]
        ]
        offset += mp3_duration_ms(data)
    assert done["audio"]["words"] == expected_words
    times = [v["time_ms"] for v in done["audio"]["visemes"]]
    assert times == sorted(times) and times[-1] > mp3_duration_ms(parts[0])
    # The chunks belong to the conversation: deleting it removes them.
    await api.client.delete(f"/v1/conversations/{conversation['id']}", headers=api.auth(key))
    gone = await api.client.get(audio[0]["url"].removeprefix("http://testserver"))
    assert gone.status_code == 404


async def test_a_model_failing_mid_stream_ends_with_error_and_changes_nothing(api: Api) -> None:
    key = await api.key(mode="live")
    name = f"midway-{secrets.token_hex(3)}"
    llm = ScriptedLLM(
        name,
        text="First part is fine. Second part is fine too. Then it",
        fail=ProviderError(FailureCategory.UNAVAILABLE, name, "503 upstream"),
    )
    api.state.providers.register(ProviderSpec(name, "llm", lambda _s: llm))
    conversation = await api.conversation(key, ai_provider=name, tts_provider="espeak")
    before = await snapshot(api, key, conversation["id"])
    files = api.audio_files()
    stream = await stream_send(api, key, conversation["id"])
    events = [event async for event in stream.events()]
    assert events[-1].type == "error"
    assert [e.type for e in events].count("error") == 1 and "done" not in [e.type for e in events]
    error = events[-1].json()["error"]
    assert error["code"] == "ai_provider_error"
    assert error["details"] == {"provider": name, "reason": "unavailable", "retryable": True}
    assert error["request_id"] == stream.headers["x-request-id"]
    assert await snapshot(api, key, conversation["id"]) == before
    assert api.audio_files() == files


async def test_speech_failing_mid_stream_ends_with_error_and_changes_nothing(api: Api) -> None:
    key = await api.key(mode="live")
    name = f"mute-{secrets.token_hex(3)}"
    api.state.providers.register(
        ProviderSpec(name, "tts", lambda _s: FailingTTS(name, FailureCategory.TIMEOUT))
    )
    conversation = await api.conversation(key, ai_provider="local", tts_provider=name)
    before = await snapshot(api, key, conversation["id"])
    stream = await stream_send(api, key, conversation["id"])
    events = [event async for event in stream.events()]
    assert events[-1].type == "error"
    assert events[-1].json()["error"]["code"] == "tts_provider_error"
    assert await snapshot(api, key, conversation["id"]) == before


async def test_a_client_that_hangs_up_stops_the_model_and_frees_its_slot(api: Api) -> None:
    account = f"hangup-{secrets.token_hex(3)}"
    key = await api.key(mode="live", account=account)
    await api.state.accounts.set_limits(account, concurrent=1)
    llm = held(api, hold_after=3)
    conversation = await api.conversation(key, ai_provider=llm.name, tts_provider="espeak")
    before = await snapshot(api, key, conversation["id"])
    files = api.audio_files()
    stream = await stream_send(api, key, conversation["id"])
    async for event in stream.events():
        assert event.type == "message"
        break
    await asyncio.wait_for(llm.holding.wait(), 10)
    # While the stream is open it holds the account's only slot.
    busy = await api.client.get("/v1/usage", headers=api.auth(key))
    assert_error(busy, 429, "rate_limit_exceeded", reason="concurrent_requests")
    await stream.hang_up()
    assert llm.stopped_early and not llm.finished
    free = await api.client.get("/v1/usage", headers=api.auth(key))
    assert free.status_code == 200, free.text
    assert await snapshot(api, key, conversation["id"]) == before
    assert api.audio_files() == files


async def test_errors_found_before_the_stream_are_plain_json(api: Api) -> None:
    key = await api.key()
    missing = await open_stream(
        api.app, "/v1/conversations/conv_0000000000000000/messages", api.auth(key),
        {"content": "Hi", "stream": True},
    )  # fmt: skip
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "conversation_not_found"
    conversation = await api.conversation(key)
    bad = await stream_send(api, key, conversation["id"], content="")
    assert bad.status == 400
    assert (await bad.json())["error"]["details"] == {"field": "content", "reason": "empty"}


async def test_quiet_streams_send_heartbeat_comments(api: Api) -> None:
    key = await api.key(mode="live")
    llm = held(api, hold_after=1)
    conversation = await api.conversation(key, ai_provider=llm.name, tts_provider="browser")
    settings = api.state.settings
    original = settings.sse_heartbeat_s
    settings.sse_heartbeat_s = 0.05
    try:
        stream = await stream_send(api, key, conversation["id"])
        events = []
        async for chunk in stream.chunks():
            events += stream.decoder.feed(chunk)
            if len(stream.decoder.comments) >= 2:
                llm.resume.set()
        assert stream.decoder.comments[:2] == [" keep-alive", " keep-alive"]
        assert events[-1].type == "done"
    finally:
        settings.sse_heartbeat_s = original


async def test_browser_speech_streams_text_only(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key, tts_provider="browser")
    stream = await stream_send(api, key, conversation["id"])
    events = [event async for event in stream.events()]
    assert {e.type for e in events} == {"message", "done"}
    done = events[-1].json()
    assert done["audio_url"] is None and done["speech"]["provider"] == "browser"


async def test_a_hung_up_embedded_reply_charges_the_tokens_it_generated(api: Api) -> None:
    """The embedded engine counts every token it ran, so a reply stopped early is charged
    exactly: its prompt and the tokens produced before the stop, and nothing estimated."""
    from avatarium.conversations.prompt import build_prompt

    key = await api.key(account=f"cancel-usage-{secrets.token_hex(3)}")
    conversation = await api.conversation(key)  # test mode: the embedded model
    before = (await api.client.get("/v1/usage", headers=api.auth(key))).json()
    stream = await stream_send(api, key, conversation["id"])
    deltas = 0
    async for event in stream.events():
        if event.type == "message":
            deltas += 1
            if deltas == 2:
                break
    await stream.hang_up()
    after = (await api.client.get("/v1/usage", headers=api.auth(key))).json()
    local = api.state.providers.llm("local")
    assert local is not None
    prompt = build_prompt(local, personality(api, conversation), [], "Tell me about the sun.")
    prompt_tokens = local.count_tokens(prompt)
    charged = after["ai_tokens"] - before["ai_tokens"]
    # At least the prompt and one token per text event seen; at most the reply's bound.
    max_reply = api.state.settings.local_max_tokens
    assert prompt_tokens + deltas <= charged <= prompt_tokens + max_reply, (charged, prompt_tokens)
    assert after["ai_tokens_estimated"] == before["ai_tokens_estimated"]
    assert after["messages"]["used"] == before["messages"]["used"]  # a stopped reply is free
