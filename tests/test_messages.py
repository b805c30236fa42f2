"""Sending messages: the reply with speech, usage, audio URLs, idempotency, atomicity."""

from __future__ import annotations

import asyncio
from typing import Any

from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.registry import ProviderSpec
from avatarium.speech.mp3 import mp3_duration_ms
from tests.support import Api, FailingTTS, ScriptedLLM, assert_error, assert_ranges_served

CONVERSATIONS = "/v1/conversations"


def local(url: str) -> str:
    return url.removeprefix("http://testserver")


async def send(api: Api, key: str, conversation_id: str, **body: Any) -> Any:
    response = await api.client.post(
        f"{CONVERSATIONS}/{conversation_id}/messages", json=body, headers=api.auth(key)
    )
    return response


async def test_reply_has_text_speech_and_usage(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    response = await send(api, key, conversation["id"], content="Hello! Who are you?")
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["object"] == "message" and reply["role"] == "assistant"
    assert reply["id"].startswith("msg_") and reply["conversation_id"] == conversation["id"]
    assert reply["content"].strip()
    assert reply["usage"]["ai_tokens"] > 0
    assert reply["usage"]["tts_characters"] == len(reply["content"])
    audio = reply["audio"]
    assert audio["format"] == "mp3" and audio["url"] == reply["audio_url"]
    assert audio["url"].startswith("http://testserver/v1/audio/aud_")
    assert audio["duration_ms"] > 300
    times = [v["time_ms"] for v in audio["visemes"]]
    assert times == sorted(times) and audio["visemes"][0]["viseme"]
    # Word timings name the reply's own words, in order and in time order.
    position = 0
    for word in audio["words"]:
        found = reply["content"].find(word["text"], position)
        assert found >= 0, (word, reply["content"])
        position = found + len(word["text"])
    word_times = [w["time_ms"] for w in audio["words"]]
    assert word_times == sorted(word_times)
    assert len(audio["words"]) >= 2
    download = await api.client.get(local(reply["audio_url"]))
    assert download.status_code == 200
    assert download.headers["content-type"] == "audio/mpeg"
    await assert_ranges_served(api.client, local(reply["audio_url"]))
    measured = mp3_duration_ms(download.content)
    assert abs(measured - audio["duration_ms"]) <= 0.1 * audio["duration_ms"]
    timing = response.headers["server-timing"]
    for phase in ("app", "db", "ai", "tts"):
        assert f"{phase};dur=" in timing


async def test_conversation_counts_both_turns_and_usage(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    first = (await send(api, key, conversation["id"], content="Hi there")).json()
    second = (await send(api, key, conversation["id"], content="Tell me a fact.", tts=False)).json()
    assert second["audio"] is None and second["audio_url"] is None
    assert second["usage"]["tts_characters"] == 0
    full = (
        await api.client.get(f"{CONVERSATIONS}/{conversation['id']}", headers=api.auth(key))
    ).json()
    assert full["message_count"] == 4
    roles = [m["role"] for m in full["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert full["messages"][1]["id"] == first["id"]
    assert first["reply_to"] == full["messages"][0]["id"]
    assert full["messages"][0]["content"] == "Hi there"
    assert full["usage"]["ai_tokens"] == first["usage"]["ai_tokens"] + second["usage"]["ai_tokens"]
    assert full["usage"]["tts_characters"] == first["usage"]["tts_characters"]
    listed = (
        await api.client.get(
            f"{CONVERSATIONS}/{conversation['id']}/messages?order=desc", headers=api.auth(key)
        )
    ).json()
    assert [m["id"] for m in listed["data"]] == [m["id"] for m in reversed(full["messages"])]
    page = (
        await api.client.get(
            f"{CONVERSATIONS}/{conversation['id']}/messages?limit=1&starting_after="
            f"{full['messages'][1]['id']}",
            headers=api.auth(key),
        )
    ).json()
    assert [m["id"] for m in page["data"]] == [full["messages"][2]["id"]] and page["has_more"]
    one = (
        await api.client.get(
            f"{CONVERSATIONS}/{conversation['id']}/messages/{first['id']}", headers=api.auth(key)
        )
    ).json()
    assert one["content"] == first["content"]


async def test_reading_again_signs_a_fresh_url(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    reply = (await send(api, key, conversation["id"], content="Hello")).json()
    api.clock.advance(5)  # the signing clock is the app's clock: no need to wait a second
    again = (
        await api.client.get(
            f"{CONVERSATIONS}/{conversation['id']}/messages/{reply['id']}", headers=api.auth(key)
        )
    ).json()
    assert again["audio_url"] != reply["audio_url"]
    assert (await api.client.get(local(again["audio_url"]))).status_code == 200


async def test_bad_expired_and_foreign_audio_signatures(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    reply = (await send(api, key, conversation["id"], content="Hello")).json()
    url = local(reply["audio_url"])
    path, query = url.split("?")
    clip_id = path.rsplit("/", 1)[1].removesuffix(".mp3")
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert_error(await api.client.get(tampered), 404, "not_found")
    past = int(api.clock.now().timestamp()) - 10
    expired_sig = api.state.signer.sign_url(clip_id, past)
    assert_error(await api.client.get(f"{path}?expires={past}&sig={expired_sig}"), 404, "not_found")
    other = (await send(api, key, conversation["id"], content="Again", tts=True)).json()
    other_query = other["audio_url"].split("?")[1]
    assert_error(await api.client.get(f"{path}?{other_query}"), 404, "not_found")
    assert_error(await api.client.get(path), 404, "not_found")
    assert (await api.client.get(f"{path}?{query}")).status_code == 200


async def test_browser_speech_makes_no_audio(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key, tts_provider="browser")
    reply = (await send(api, key, conversation["id"], content="Hello")).json()
    assert reply["audio_url"] is None and reply["audio"] is None
    assert reply["speech"] == {
        "provider": "browser",
        "voice_id": "default",
        "text": reply["content"],
    }


async def test_idempotent_replay_returns_the_identical_body(api: Api) -> None:
    key = await api.key()
    headers = {**api.auth(key), "Idempotency-Key": "create-1"}
    first = await api.client.post(CONVERSATIONS, json={"avatar_id": "aria-001"}, headers=headers)
    replay = await api.client.post(CONVERSATIONS, json={"avatar_id": "aria-001"}, headers=headers)
    assert replay.status_code == 200 and replay.content == first.content
    assert replay.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    conversation_id = first.json()["id"]
    url = f"{CONVERSATIONS}/{conversation_id}/messages"
    send_headers = {**api.auth(key), "Idempotency-Key": "send-1"}
    one = await api.client.post(url, json={"content": "Hello"}, headers=send_headers)
    two = await api.client.post(url, json={"content": "Hello"}, headers=send_headers)
    assert two.content == one.content and two.headers["idempotent-replayed"] == "true"
    listed = (await api.client.get(CONVERSATIONS, headers=api.auth(key))).json()
    assert [c["id"] for c in listed["data"]] == [conversation_id]
    convo = (
        await api.client.get(f"{CONVERSATIONS}/{conversation_id}", headers=api.auth(key))
    ).json()
    assert convo["message_count"] == 2
    # The same key on another endpoint is a separate request.
    other = await api.client.post(
        CONVERSATIONS,
        json={"avatar_id": "aria-001"},
        headers={**api.auth(key), "Idempotency-Key": "send-1"},
    )
    assert other.status_code == 200 and other.json()["id"] != conversation_id


async def snapshot(api: Api, key: str, conversation_id: str) -> Any:
    response = await api.client.get(f"{CONVERSATIONS}/{conversation_id}", headers=api.auth(key))
    body = response.json()
    body.pop("status")
    return body


async def test_failed_sends_leave_the_conversation_untouched(api: Api) -> None:
    key = await api.key(mode="live")
    llm = ScriptedLLM(
        "midway-ai",
        text="Half a sentence and then",
        fail=ProviderError(FailureCategory.UNAVAILABLE, "midway-ai", "503 upstream"),
    )
    api.state.providers.register(ProviderSpec("midway-ai", "llm", lambda _s: llm))
    api.state.providers.register(
        ProviderSpec(
            "mute-tts", "tts", lambda _s: FailingTTS("mute-tts", FailureCategory.AUTH_FAILED)
        )
    )
    good = await api.conversation(key)
    (await send(api, key, good["id"], content="First turn")).raise_for_status()
    for ai, tts, code, reason, retryable in [
        ("midway-ai", "espeak", "ai_provider_error", "unavailable", True),
        ("local", "mute-tts", "tts_provider_error", "auth_failed", False),
    ]:
        conversation = await api.conversation(key, ai_provider=ai, tts_provider=tts)
        (
            await send(api, key, conversation["id"], content="Before", tts=False)
        ).raise_for_status() if ai == "local" else None
        before = await snapshot(api, key, conversation["id"])
        files_before = api.audio_files()
        for attempt in range(2):  # the retry a client makes is just as harmless
            response = await send(api, key, conversation["id"], content=f"Fail {attempt}")
            assert_error(response, 503, code, reason=reason, retryable=retryable)
        assert await snapshot(api, key, conversation["id"]) == before
        assert api.audio_files() == files_before
    assert (await snapshot(api, key, good["id"]))["message_count"] == 2


async def test_a_failed_idempotent_send_can_be_retried(api: Api) -> None:
    key = await api.key(mode="live")
    llm = ScriptedLLM("once-ai", fail=ProviderError(FailureCategory.TIMEOUT, "once-ai", "slow"))
    api.state.providers.register(ProviderSpec("once-ai", "llm", lambda _s: llm))
    conversation = await api.conversation(key, ai_provider="once-ai", tts_provider="browser")
    headers = {**api.auth(key), "Idempotency-Key": "retry-me"}
    url = f"{CONVERSATIONS}/{conversation['id']}/messages"
    failed = await api.client.post(url, json={"content": "hi"}, headers=headers)
    assert_error(failed, 503, "ai_provider_error", reason="timeout")
    llm.fail = None
    retried = await api.client.post(url, json={"content": "hi"}, headers=headers)
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers
    assert retried.json()["content"] == "Hello from the plugin."


async def test_the_model_sees_the_system_prompt_and_history(api: Api) -> None:
    key = await api.key(mode="live")
    llm = ScriptedLLM("echo-ai", text="Noted.")
    api.state.providers.register(ProviderSpec("echo-ai", "llm", lambda _s: llm))
    conversation = await api.conversation(
        key, ai_provider="echo-ai", tts_provider="browser", system_prompt="You are terse."
    )
    for content in ("My name is Ada.", "What is my name?"):
        (await send(api, key, conversation["id"], content=content)).raise_for_status()
    seen = [(m.role, m.content) for m in llm.requests[-1].messages]
    assert seen == [
        ("system", "You are terse."),
        ("user", "My name is Ada."),
        ("assistant", "Noted."),
        ("user", "What is my name?"),
    ]
    assert llm.requests[-1].model == "scripted-1"


async def test_a_reply_in_progress_does_not_stall_other_requests(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    sending = asyncio.create_task(
        send(api, key, conversation["id"], content="Tell me a long story about the sea.")
    )
    # Wait until the model is busy with this reply (it holds a slot on the engine's thread).
    engine = api.state.providers.llm("local").engine()  # type: ignore[union-attr]
    for _ in range(500):
        if engine.replies_in_progress:
            break
        await asyncio.sleep(0.005)
    assert engine.replies_in_progress == 1
    answered = await api.client.get("/v1/avatars")
    assert answered.status_code == 200
    assert not sending.done()  # the event loop answered while the model was still writing
    assert (await sending).status_code == 200
