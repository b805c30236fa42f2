"""Conversation resources: create, read, list, pagination, filters, end, idle, delete,
and isolation between accounts and between live and test mode."""

from __future__ import annotations

from tests.support import Api, assert_error

CONVERSATIONS = "/v1/conversations"


async def test_create_defaults_to_the_embedded_engines(api: Api) -> None:
    key = await api.key()
    body = await api.conversation(key, metadata={"user": "u-1"})
    assert body["id"].startswith("conv_") and len(body["id"]) >= 5 + 16
    assert body["object"] == "conversation"
    assert body["status"] == "active"
    assert body["config"] == {
        "ai_provider": "local",
        "tts_provider": "espeak",
        "voice_id": "en-us+f3",
        "model": "smollm2-135m-instruct",
        "stt_provider": "whisper",
        "language": None,
        "sandbox": True,
    }
    assert body["metadata"] == {"user": "u-1"}
    assert body["byok_enabled"] is False
    assert body["message_count"] == 0
    assert body["usage"] == {"ai_tokens": 0, "tts_characters": 0, "stt_seconds": 0.0}
    assert body["created_at"].endswith("Z") and len(body["created_at"]) == 24


async def test_test_mode_names_cloud_providers_but_runs_in_the_sandbox(api: Api) -> None:
    key = await api.key(mode="test")
    body = await api.conversation(key, ai_provider="openai", tts_provider="google")
    assert body["config"]["ai_provider"] == "openai"
    assert body["config"]["voice_id"] == "en-US-Neural2-F"
    assert body["config"]["sandbox"] is True


async def test_live_mode_is_not_a_sandbox(api: Api) -> None:
    key = await api.key(mode="live")
    body = await api.conversation(key)
    assert body["config"]["sandbox"] is False


async def test_get_and_list_newest_first_with_pages(api: Api) -> None:
    key = await api.key()
    made = [await api.conversation(key) for _ in range(5)]
    response = await api.client.get(f"{CONVERSATIONS}?limit=2", headers=api.auth(key))
    page = response.json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [c["id"] for c in page["data"]] == [made[4]["id"], made[3]["id"]]
    seen = [c["id"] for c in page["data"]]
    while page["has_more"]:
        response = await api.client.get(
            f"{CONVERSATIONS}?limit=2&starting_after={page['next_cursor']}", headers=api.auth(key)
        )
        page = response.json()
        seen += [c["id"] for c in page["data"]]
    assert seen == [c["id"] for c in reversed(made)]
    assert page["next_cursor"] is None
    one = await api.client.get(f"{CONVERSATIONS}/{made[0]['id']}", headers=api.auth(key))
    assert one.json()["id"] == made[0]["id"] and one.json()["messages"] == []


async def test_filters_by_avatar_and_status(api: Api) -> None:
    key = await api.key()
    aria = await api.conversation(key)
    luna = await api.conversation(key, avatar_id="luna-003")
    await api.client.post(f"{CONVERSATIONS}/{aria['id']}/end", headers=api.auth(key))
    by_avatar = await api.client.get(f"{CONVERSATIONS}?avatar_id=luna-003", headers=api.auth(key))
    assert [c["id"] for c in by_avatar.json()["data"]] == [luna["id"]]
    ended = await api.client.get(f"{CONVERSATIONS}?status=ended", headers=api.auth(key))
    assert [c["id"] for c in ended.json()["data"]] == [aria["id"]]
    active = await api.client.get(f"{CONVERSATIONS}?status=active", headers=api.auth(key))
    assert [c["id"] for c in active.json()["data"]] == [luna["id"]]


async def test_idle_after_thirty_minutes(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    url = f"{CONVERSATIONS}/{conversation['id']}"
    api.clock.advance(29 * 60)
    assert (await api.client.get(url, headers=api.auth(key))).json()["status"] == "active"
    api.clock.advance(61)
    assert (await api.client.get(url, headers=api.auth(key))).json()["status"] == "idle"
    idle = await api.client.get(f"{CONVERSATIONS}?status=idle", headers=api.auth(key))
    assert conversation["id"] in [c["id"] for c in idle.json()["data"]]
    sent = await api.client.post(
        f"{url}/messages", json={"content": "Still there?", "tts": False}, headers=api.auth(key)
    )
    assert sent.status_code == 200
    assert (await api.client.get(url, headers=api.auth(key))).json()["status"] == "active"


async def test_delete_removes_messages_and_audio(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    url = f"{CONVERSATIONS}/{conversation['id']}"
    reply = (
        await api.client.post(f"{url}/messages", json={"content": "Hi"}, headers=api.auth(key))
    ).json()
    audio_url = reply["audio_url"].removeprefix("http://testserver")
    assert (await api.client.get(audio_url)).status_code == 200
    deleted = await api.client.delete(url, headers=api.auth(key))
    assert deleted.json() == {"id": conversation["id"], "object": "conversation", "deleted": True}
    assert_error(await api.client.get(url, headers=api.auth(key)), 404, "conversation_not_found")
    assert_error(
        await api.client.get(f"{url}/messages", headers=api.auth(key)),
        404,
        "conversation_not_found",
    )
    assert_error(await api.client.get(audio_url), 404, "not_found")
    assert_error(await api.client.delete(url, headers=api.auth(key)), 404, "conversation_not_found")


async def test_other_accounts_and_modes_see_nothing(api: Api) -> None:
    owner = await api.key(mode="test")
    conversation = await api.conversation(owner)
    url = f"{CONVERSATIONS}/{conversation['id']}"
    reply = (
        await api.client.post(f"{url}/messages", json={"content": "Hello"}, headers=api.auth(owner))
    ).json()
    message_url = f"{url}/messages/{reply['id']}"
    audio_url = reply["audio_url"].removeprefix("http://testserver")
    same_account_live = await api.key(account=await _account_of(api, owner), mode="live")
    stranger = await api.key(mode="test")
    for other in (same_account_live, stranger):
        for method, path in [
            ("GET", url),
            ("GET", f"{url}/messages"),
            ("GET", message_url),
            ("POST", f"{url}/end"),
            ("DELETE", url),
        ]:
            response = await api.client.request(method, path, headers=api.auth(other))
            assert_error(response, 404, "conversation_not_found")
        response = await api.client.post(
            f"{url}/messages", json={"content": "hijack"}, headers=api.auth(other)
        )
        assert_error(response, 404, "conversation_not_found")
        listed = await api.client.get(CONVERSATIONS, headers=api.auth(other))
        assert conversation["id"] not in [c["id"] for c in listed.json()["data"]]
        assert_error(await api.client.get(audio_url, headers=api.auth(other)), 404, "not_found")
    # The owner still has it all, untouched.
    again = (await api.client.get(url, headers=api.auth(owner))).json()
    assert again["message_count"] == 2 and again["status"] == "active"


async def _account_of(api: Api, key: str) -> str:
    principal = await api.state.keys.authenticate(key)
    return principal.account_name
