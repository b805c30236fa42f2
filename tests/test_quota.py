"""The monthly quota and GET /v1/usage, over SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.registry import ProviderSpec
from tests.support import Api, ScriptedLLM, assert_error, personality


async def account_with_quota(api: Api, quota: int) -> tuple[str, str]:
    name = f"quota-{api.backend}-{secrets.token_hex(3)}"
    await api.state.accounts.ensure(name, "enterprise")
    await api.state.accounts.set_limits(name, monthly_messages=quota)
    return name, await api.key(account=name, mode="live")


async def test_concurrent_sends_never_overspend_the_quota(api: Api) -> None:
    _, key = await account_with_quota(api, 100)
    llm = ScriptedLLM(f"quick-{api.backend}", text="Sure.")
    api.state.providers.register(ProviderSpec(llm.name, "llm", lambda _s: llm))
    conversations = [
        (await api.conversation(key, ai_provider=llm.name, tts_provider="browser"))["id"]
        for _ in range(10)
    ]

    async def send(index: int) -> tuple[int, dict[str, object]]:
        response = await api.client.post(
            f"/v1/conversations/{conversations[index % 10]}/messages",
            json={"content": f"message {index}"},
            headers=api.auth(key),
        )
        return response.status_code, response.json()

    results = await asyncio.gather(*(send(i) for i in range(150)))
    statuses = [status for status, _ in results]
    assert statuses.count(200) == 100 and statuses.count(429) == 50
    refusal = next(body for status, body in results if status == 429)
    assert refusal["error"]["code"] == "quota_exceeded"  # type: ignore[index]
    details = refusal["error"]["details"]  # type: ignore[index]
    assert details["limit"] == 100 and details["used"] <= 100
    stored = 0
    for conversation_id in conversations:
        body = (
            await api.client.get(f"/v1/conversations/{conversation_id}", headers=api.auth(key))
        ).json()
        stored += body["message_count"]
    assert stored == 200  # 100 turns, each a user message and a reply
    usage = (await api.client.get("/v1/usage", headers=api.auth(key))).json()
    assert usage["messages"] == {"used": 100, "limit": 100, "remaining": 0}


async def test_quota_exceeded_says_when_it_resets(api: Api) -> None:
    _, key = await account_with_quota(api, 1)
    conversation = await api.conversation(key, tts_provider="browser")
    url = f"/v1/conversations/{conversation['id']}/messages"
    assert (
        await api.client.post(url, json={"content": "one"}, headers=api.auth(key))
    ).status_code == 200
    refused = await api.client.post(url, json={"content": "two"}, headers=api.auth(key))
    error = assert_error(refused, 429, "quota_exceeded", limit=1, used=1)
    now = datetime.now(UTC)
    next_month = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    assert error["details"]["resets_at"] == next_month.strftime("%Y-%m-%dT00:00:00.000Z")
    retry_after = int(refused.headers["retry-after"])
    assert abs(retry_after - (next_month - now).total_seconds()) < 5
    # Quota comes after the lookup: an unknown conversation is still a 404.
    missing = await api.client.post(
        "/v1/conversations/conv_nope0000000000000000/messages",
        json={"content": "x"},
        headers=api.auth(key),
    )
    assert_error(missing, 404, "conversation_not_found")


async def test_failed_replies_use_no_quota_but_their_cost_is_counted(api: Api) -> None:
    _, key = await account_with_quota(api, 5)
    llm = ScriptedLLM(
        f"down-{api.backend}", fail=ProviderError(FailureCategory.UNAVAILABLE, "down", "503")
    )
    api.state.providers.register(ProviderSpec(llm.name, "llm", lambda _s: llm))
    broken = await api.conversation(key, ai_provider=llm.name, tts_provider="browser")
    for _ in range(3):
        response = await api.client.post(
            f"/v1/conversations/{broken['id']}/messages",
            json={"content": "hi"},
            headers=api.auth(key),
        )
        assert_error(response, 503, "ai_provider_error")
    good = await api.conversation(key)
    reply = (
        await api.client.post(
            f"/v1/conversations/{good['id']}/messages",
            json={"content": "hi"},
            headers=api.auth(key),
        )
    ).json()
    usage = (await api.client.get("/v1/usage", headers=api.auth(key))).json()
    assert usage["messages"] == {"used": 1, "limit": 5, "remaining": 4}
    # Each failed reply wrote its text before failing, without reporting usage: it is
    # charged an estimate (prompt + text, by the provider's own counter), marked as such.
    from avatarium.conversations.prompt import build_prompt
    from avatarium.providers.llm.base import ChatMessage

    prompt = build_prompt(llm, personality(api, broken), [], "hi")
    written = "".join(word + " " for word in llm.text.split(" "))
    each = llm.count_tokens([*prompt, ChatMessage("assistant", written)])
    assert usage["ai_tokens_estimated"] == 3 * each
    assert usage["ai_tokens"] == reply["usage"]["ai_tokens"] + 3 * each
    assert usage["tts_characters"] == reply["usage"]["tts_characters"] > 0


async def test_usage_of_a_fresh_account(api: Api) -> None:
    name = f"fresh-{api.backend}-{secrets.token_hex(3)}"
    await api.state.accounts.ensure(name, "creator")
    key = await api.key(account=name)
    usage = (await api.client.get("/v1/usage", headers=api.auth(key))).json()
    assert usage["tier"] == "creator"
    assert usage["messages"] == {"used": 0, "limit": 10_000, "remaining": 10_000}
    assert usage["limits"] == {"requests_per_minute": 60, "concurrent_requests": 10}
    assert usage["ai_tokens"] == 0 and usage["tts_characters"] == 0
    assert usage["period"]["start"].endswith("-01T00:00:00.000Z")
    enterprise = await api.key()
    unlimited = (await api.client.get("/v1/usage", headers=api.auth(enterprise))).json()
    assert unlimited["messages"]["limit"] is None
    assert unlimited["messages"]["remaining"] is None


async def test_a_send_refused_after_reserving_gives_the_reservation_back(api: Api) -> None:
    _, key = await account_with_quota(api, 1)
    ended = await api.conversation(key, tts_provider="browser")
    await api.client.post(f"/v1/conversations/{ended['id']}/end", headers=api.auth(key))
    for _ in range(3):  # each refusal reserved the one message left, and must return it
        response = await api.client.post(
            f"/v1/conversations/{ended['id']}/messages",
            json={"content": "Hello?"},
            headers=api.auth(key),
        )
        assert_error(response, 400, "invalid_request", reason="conversation_ended")
    live = await api.conversation(key, tts_provider="browser")
    response = await api.client.post(
        f"/v1/conversations/{live['id']}/messages", json={"content": "Hi"}, headers=api.auth(key)
    )
    assert response.status_code == 200, response.text
