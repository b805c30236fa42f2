"""Every error code the core endpoints can produce: status, code, details, check order."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.registry import ProviderSpec
from tests.support import Api, ScriptedLLM, assert_error

CONVERSATIONS = "/v1/conversations"


async def test_missing_api_key(api: Api) -> None:
    response = await api.client.get(CONVERSATIONS)
    assert_error(response, 401, "missing_api_key")
    response = await api.client.get(CONVERSATIONS, headers={"Authorization": "Bearer "})
    assert_error(response, 401, "missing_api_key")


async def test_invalid_api_key_malformed_unknown_and_revoked(api: Api) -> None:
    for token in ("nope", "av_test_short", "av_prod_" + "a" * 32, "av_live_" + "a" * 32):
        response = await api.client.get(CONVERSATIONS, headers=api.auth(token))
        assert_error(response, 401, "invalid_api_key")
    response = await api.client.get(CONVERSATIONS, headers={"Authorization": "Basic abc"})
    assert_error(response, 401, "invalid_api_key")
    key = await api.key()
    assert (await api.client.get(CONVERSATIONS, headers=api.auth(key))).status_code == 200
    records = await api.state.keys.list()
    key_id = next(
        k.id
        for k, _ in records
        if key.startswith(k.prefix)
        and k.revoked_at is None
        and api.state.signer.hash_api_key(key) == k.key_hash
    )
    assert await api.state.keys.revoke(key_id)
    response = await api.client.get(CONVERSATIONS, headers=api.auth(key))
    assert_error(response, 401, "invalid_api_key")


async def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    key = await api.key()
    response = await api.client.get(CONVERSATIONS, headers={"Authorization": f"bEaReR {key}"})
    assert response.status_code == 200


async def test_expired_api_key(api: Api) -> None:
    key = await api.key(expires_in=timedelta(seconds=30))
    assert (await api.client.get(CONVERSATIONS, headers=api.auth(key))).status_code == 200
    api.clock.advance(31)
    response = await api.client.get(CONVERSATIONS, headers=api.auth(key))
    assert_error(response, 401, "expired_api_key")


async def test_read_only_key_cannot_write(api: Api) -> None:
    key = await api.key(scope="read")
    assert (await api.client.get(CONVERSATIONS, headers=api.auth(key))).status_code == 200
    response = await api.client.post(
        CONVERSATIONS, json={"avatar_id": "aria-001"}, headers=api.auth(key)
    )
    assert_error(response, 403, "insufficient_permissions", reason="read_only_key")
    # Permission comes before parameters in the check order.
    response = await api.client.post(CONVERSATIONS, content=b"{", headers=api.auth(key))
    assert_error(response, 403, "insufficient_permissions")


async def test_invalid_request_bodies(api: Api) -> None:
    headers = api.auth(await api.key())
    cases = [
        (b"{not json", "application/json", "invalid_json"),
        (b"[1, 2]", "application/json", "not_an_object"),
        (b'{"avatar_id": "aria-001"}', "text/plain", "unsupported_content_type"),
        (b"", "application/json", "empty_body"),
    ]
    for body, content_type, reason in cases:
        response = await api.client.post(
            CONVERSATIONS, content=body, headers={**headers, "Content-Type": content_type}
        )
        assert_error(response, 400, "invalid_request", reason=reason)


async def test_missing_parameters(api: Api) -> None:
    key = await api.key()
    response = await api.client.post(CONVERSATIONS, json={}, headers=api.auth(key))
    assert_error(response, 400, "missing_parameter", field="avatar_id", reason="missing")
    response = await api.client.post(CONVERSATIONS, json={"avatar_id": None}, headers=api.auth(key))
    assert_error(response, 400, "missing_parameter", field="avatar_id")
    conversation = await api.conversation(key)
    response = await api.client.post(
        f"{CONVERSATIONS}/{conversation['id']}/messages",
        json={"tts": False},
        headers=api.auth(key),
    )
    assert_error(response, 400, "missing_parameter", field="content", reason="missing")


async def test_invalid_parameters(api: Api) -> None:
    key = await api.key()
    live = await api.key(mode="live")
    create = [
        ({"avatar_id": 7}, "avatar_id", "invalid_type", key),
        ({"avatar_id": "   "}, "avatar_id", "empty", key),
        ({"avatar_id": "aria-001", "system_prompt": "x" * 2001}, "system_prompt", "too_long", key),
        ({"avatar_id": "aria-001", "ai_provider": "skynet"}, "ai_provider", "not_allowed", key),
        ({"avatar_id": "aria-001", "tts_provider": "morse"}, "tts_provider", "not_allowed", key),
        ({"avatar_id": "aria-001", "ai_provider": "openai"}, "ai_provider", "not_configured", live),
        (
            {"avatar_id": "aria-001", "tts_provider": "elevenlabs"},
            "tts_provider",
            "not_configured",
            live,
        ),
        ({"avatar_id": "aria-001", "colour": "red"}, "colour", "unknown_field", key),
        ({"avatar_id": "aria-001", "metadata": "x"}, "metadata", "invalid_type", key),
        (
            {"avatar_id": "aria-001", "metadata": {f"k{i}": "v" for i in range(17)}},
            "metadata",
            "too_long",
            key,
        ),
        ({"avatar_id": "aria-001", "metadata": {"k": 1}}, "metadata.k", "invalid_type", key),
        ({"avatar_id": "aria-001", "metadata": {"k": "v" * 501}}, "metadata.k", "too_long", key),
        ({"avatar_id": "aria-001", "voice_id": "klingon"}, "voice_id", "not_allowed", key),
    ]
    for body, field, reason, used in create:
        response = await api.client.post(CONVERSATIONS, json=body, headers=api.auth(used))
        assert_error(response, 400, "invalid_parameter", field=field, reason=reason)
    error = assert_error(
        await api.client.post(
            CONVERSATIONS,
            json={"avatar_id": "aria-001", "system_prompt": "x" * 2001},
            headers=api.auth(key),
        ),
        400,
        "invalid_parameter",
    )
    assert error["details"]["max_length"] == 2000

    conversation = await api.conversation(key)
    send = f"{CONVERSATIONS}/{conversation['id']}/messages"
    for body, field, reason in [
        ({"content": ""}, "content", "empty"),
        ({"content": " \n\t "}, "content", "empty"),
        ({"content": "x" * 5001}, "content", "too_long"),
        ({"content": 5}, "content", "invalid_type"),
        ({"content": "hi", "tts": "yes"}, "tts", "invalid_type"),
        ({"content": "hi", "extra": 1}, "extra", "unknown_field"),
    ]:
        response = await api.client.post(send, json=body, headers=api.auth(key))
        assert_error(response, 400, "invalid_parameter", field=field, reason=reason)
    for query, field, reason in [
        ("limit=0", "limit", "out_of_range"),
        ("limit=101", "limit", "out_of_range"),
        ("limit=ten", "limit", "invalid_type"),
        ("status=sleeping", "status", "not_allowed"),
        ("starting_after=conv_missing", "starting_after", "not_allowed"),
    ]:
        response = await api.client.get(f"{CONVERSATIONS}?{query}", headers=api.auth(key))
        assert_error(response, 400, "invalid_parameter", field=field, reason=reason)
    response = await api.client.get(f"{send}?order=sideways", headers=api.auth(key))
    assert_error(response, 400, "invalid_parameter", field="order", reason="not_allowed")
    response = await api.client.post(
        send, json={"content": "hi"}, headers={**api.auth(key), "Idempotency-Key": "k" * 256}
    )
    assert_error(response, 400, "invalid_parameter", field="Idempotency-Key")


async def test_not_found_codes(api: Api) -> None:
    key = await api.key()
    response = await api.client.post(
        CONVERSATIONS, json={"avatar_id": "nobody-999"}, headers=api.auth(key)
    )
    assert_error(response, 404, "avatar_not_found", field="avatar_id")
    assert_error(await api.client.get("/v1/avatars/nobody-999"), 404, "avatar_not_found")
    assert_error(await api.client.get("/v1/avatars/nobody-999/model"), 404, "avatar_not_found")
    response = await api.client.get(
        f"{CONVERSATIONS}/conv_doesnotexist00000000", headers=api.auth(key)
    )
    assert_error(response, 404, "conversation_not_found")
    conversation = await api.conversation(key)
    response = await api.client.get(
        f"{CONVERSATIONS}/{conversation['id']}/messages/msg_nope", headers=api.auth(key)
    )
    assert_error(response, 404, "message_not_found", field="message_id")
    assert_error(await api.client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(await api.client.get("/v1/audio/aud_x.mp3?expires=1&sig=x"), 404, "not_found")


async def test_method_not_allowed(api: Api) -> None:
    response = await api.client.put("/v1/avatars")
    error = assert_error(response, 405, "method_not_allowed")
    assert "GET" in error["details"]["allowed"]
    assert "GET" in response.headers["allow"]


async def test_request_too_large(api: Api) -> None:
    big = json.dumps({"avatar_id": "aria-001", "metadata": {"k": "x" * 70_000}})
    response = await api.client.post(
        CONVERSATIONS, content=big, headers={"Content-Type": "application/json"}
    )
    # Body size is checked before authentication.
    assert_error(response, 413, "request_too_large", limit=65536)


async def test_check_order(api: Api) -> None:
    # route before everything: an unknown route with no key is 404, not 401
    assert_error(await api.client.post("/v1/nowhere", content=b"x" * 70_000), 404, "not_found")
    # authentication before body: garbage without a key is 401
    response = await api.client.post(
        CONVERSATIONS, content=b"{", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 401, "missing_api_key")
    # parameters before lookups: a bad field on an unknown avatar is 400
    key = await api.key()
    response = await api.client.post(
        CONVERSATIONS,
        json={"avatar_id": "nobody-999", "ai_provider": "skynet"},
        headers=api.auth(key),
    )
    assert_error(response, 400, "invalid_parameter", field="ai_provider")
    # parameters before the conversation lookup on sends
    response = await api.client.post(
        f"{CONVERSATIONS}/conv_doesnotexist00000000/messages",
        json={"content": ""},
        headers=api.auth(key),
    )
    assert_error(response, 400, "invalid_parameter", field="content")
    # a public endpoint checks a key that is sent anyway
    assert_error(
        await api.client.get("/v1/avatars", headers=api.auth("bogus")), 401, "invalid_api_key"
    )


async def test_conversation_ended(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    url = f"{CONVERSATIONS}/{conversation['id']}"
    first = await api.client.post(f"{url}/end", headers=api.auth(key))
    assert first.status_code == 200 and first.json()["status"] == "ended"
    again = await api.client.post(f"{url}/end", headers=api.auth(key))
    assert again.status_code == 200 and again.json()["ended_at"] == first.json()["ended_at"]
    response = await api.client.post(
        f"{url}/messages", json={"content": "hello?"}, headers=api.auth(key)
    )
    assert_error(response, 400, "invalid_request", reason="conversation_ended")


async def test_provider_errors_are_503_with_details(api: Api) -> None:
    key = await api.key(mode="live")
    llm = ScriptedLLM(
        "flaky-ai",
        fail=ProviderError(FailureCategory.RATE_LIMITED, "flaky-ai", "slow down", retry_after=3),
    )
    api.state.providers.register(ProviderSpec("flaky-ai", "llm", lambda _s: llm))
    conversation = await api.conversation(key, ai_provider="flaky-ai")
    response = await api.client.post(
        f"{CONVERSATIONS}/{conversation['id']}/messages",
        json={"content": "hi"},
        headers=api.auth(key),
    )
    assert_error(
        response,
        503,
        "ai_provider_error",
        provider="flaky-ai",
        reason="rate_limited",
        retryable=True,
    )


async def test_internal_error_hides_the_trace(api: Api) -> None:
    key = await api.key(mode="live")
    llm = ScriptedLLM("buggy-ai", fail=ZeroDivisionError("secret internal detail"))
    api.state.providers.register(ProviderSpec("buggy-ai", "llm", lambda _s: llm))
    conversation = await api.conversation(key, ai_provider="buggy-ai")
    response = await api.client.post(
        f"{CONVERSATIONS}/{conversation['id']}/messages",
        json={"content": "hi"},
        headers=api.auth(key),
    )
    assert_error(response, 500, "internal_error")
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text and "ZeroDivisionError" not in response.text


async def test_request_in_progress_and_reused_key(api: Api) -> None:
    key = await api.key(mode="live")
    llm = ScriptedLLM("slow-ai")
    llm.gate = asyncio.Event()
    api.state.providers.register(ProviderSpec("slow-ai", "llm", lambda _s: llm))
    conversation = await api.conversation(key, ai_provider="slow-ai", tts_provider="browser")
    url = f"{CONVERSATIONS}/{conversation['id']}/messages"
    headers = {**api.auth(key), "Idempotency-Key": "same-key-1"}
    first = asyncio.create_task(api.client.post(url, json={"content": "hi"}, headers=headers))
    for _ in range(500):  # until the provider has been called
        if llm.calls:
            break
        await asyncio.sleep(0.01)
    second = await api.client.post(url, json={"content": "hi"}, headers=headers)
    assert_error(second, 409, "request_in_progress")
    llm.gate.set()
    assert (await first).status_code == 200
    reused = await api.client.post(url, json={"content": "something else"}, headers=headers)
    assert_error(reused, 400, "invalid_request", reason="idempotency_key_reused")


async def test_request_id_is_echoed_or_generated(api: Api) -> None:
    response = await api.client.get("/v1/avatars", headers={"X-Request-Id": "my-trace.42"})
    assert response.headers["x-request-id"] == "my-trace.42"
    response = await api.client.get("/v1/avatars", headers={"X-Request-Id": "bad id!"})
    assert response.headers["x-request-id"].startswith("req_")
    assert len(response.headers["x-request-id"]) >= 4 + 16
