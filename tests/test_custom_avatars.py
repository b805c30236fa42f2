"""Avatars an account creates (SPEC section 9): CRUD, validation, ownership and mode
isolation, presets read-only, conversations on a custom avatar, deletion ending them."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import Api, assert_error

AVATARS = "/v1/avatars"


async def create(api: Api, key: str, **fields: Any) -> httpx.Response:
    return await api.client.post(AVATARS, json=fields, headers=api.auth(key))


async def test_create_get_list_and_isolation(api: Api) -> None:
    key = await api.key()
    response = await create(
        api, key, name="Nova", description="Helps customers of Acme Rockets.",
        traits=["cheerful", "precise"], tone="warm", language="en-GB",
        voices={"espeak": "en-gb+f2"}, tts_provider="espeak", greeting="Hi, I'm Nova!",
        topics_to_avoid=["politics"], appearance={"preset": "luna-003"},
        escalation={"triggers": ["asked_for_human", {"keywords": ["refund"]}]},
        metadata={"team": "support"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    avatar = response.json()
    assert avatar["id"].startswith("avt_") and len(avatar["id"]) >= 20
    assert avatar["owner"] == "account" and avatar["object"] == "avatar"
    assert avatar["traits"] == ["cheerful", "precise"] and avatar["language"] == "en-GB"
    assert avatar["escalation"]["triggers"] == ["asked_for_human", {"keywords": ["refund"]}]
    assert avatar["escalation"]["message"]  # a default hand-off message
    assert avatar["model_url"].endswith("/static/avatars/luna-003.svg")
    assert avatar["created_at"].endswith("Z")
    got = await api.client.get(f"{AVATARS}/{avatar['id']}", headers=api.auth(key))
    assert got.json() == avatar
    model = await api.client.get(f"{AVATARS}/{avatar['id']}/model", headers=api.auth(key))
    assert model.json()["model_url"] == avatar["model_url"]
    listed = (await api.client.get(AVATARS, headers=api.auth(key))).json()["data"]
    assert [a["owner"] for a in listed].count("account") == 1
    assert {a["id"] for a in listed if a["owner"] == "preset"} >= {"aria-001", "max-002"}
    public = (await api.client.get(AVATARS)).json()["data"]
    assert all(a["owner"] == "preset" for a in public)
    # Without a key, with another account's key, or in the other mode: not found.
    other = await api.key()
    account = await api.state.accounts.ensure(f"acct-live-{id(api)}", "enterprise")
    live = (await api.state.keys.create(account, mode="live")).secret
    for headers in ({}, api.auth(other), api.auth(live)):
        assert_error(
            await api.client.get(f"{AVATARS}/{avatar['id']}", headers=headers),
            404, "avatar_not_found",
        )  # fmt: skip
        assert_error(
            await api.client.delete(f"{AVATARS}/{avatar['id']}", headers=headers or
                                    api.auth(other)), 404, "avatar_not_found",
        )  # fmt: skip


async def test_every_field_is_checked(api: Api) -> None:
    key = await api.key()
    cases: list[tuple[dict[str, Any], int, str, dict[str, Any]]] = [
        ({}, 400, "missing_parameter", {"field": "name"}),
        ({"name": ""}, 400, "invalid_parameter", {"field": "name", "reason": "empty"}),
        ({"name": "x" * 101}, 400, "invalid_parameter", {"field": "name", "reason": "too_long"}),
        ({"name": "A", "traits": "kind"}, 400, "invalid_parameter",
         {"field": "traits", "reason": "invalid_type"}),
        ({"name": "A", "traits": ["kind", " "]}, 400, "invalid_parameter",
         {"field": "traits[1]", "reason": "empty"}),
        ({"name": "A", "topics_to_avoid": ["x"] * 51}, 400, "invalid_parameter",
         {"field": "topics_to_avoid", "reason": "too_long"}),
        ({"name": "A", "voices": {"nope": "v"}}, 400, "invalid_parameter",
         {"field": "voices.nope", "reason": "not_allowed"}),
        ({"name": "A", "language": "english!"}, 400, "invalid_parameter",
         {"field": "language", "reason": "invalid_type"}),
        ({"name": "A", "escalation": {"triggers": ["shouting"]}}, 400, "invalid_parameter",
         {"field": "escalation.triggers[0]", "reason": "not_allowed"}),
        ({"name": "A", "escalation": {"message": "hi"}}, 400, "invalid_parameter",
         {"field": "escalation.triggers", "reason": "invalid_type"}),
        ({"name": "A", "appearance": {"preset": "nobody"}}, 400, "invalid_parameter",
         {"field": "appearance.preset", "reason": "not_allowed"}),
        ({"name": "A", "appearance": {"model_url": "javascript:alert(1)"}}, 400,
         "invalid_parameter", {"field": "appearance.model_url", "reason": "invalid_type"}),
        ({"name": "A", "ai_provider": "nope"}, 400, "invalid_parameter",
         {"field": "ai_provider", "reason": "not_allowed"}),
        ({"name": "A", "colour": "red"}, 400, "invalid_parameter",
         {"field": "colour", "reason": "unknown_field"}),
        ({"name": "A", "metadata": {"k": 1}}, 400, "invalid_parameter",
         {"field": "metadata.k", "reason": "invalid_type"}),
    ]  # fmt: skip
    for body, status, code, details in cases:
        assert_error(await create(api, key, **body), status, code, **details)
    account = await api.state.accounts.ensure(f"acct-cfg-{id(api)}", "enterprise")
    live = (await api.state.keys.create(account, mode="live")).secret
    assert_error(await create(api, live, name="A", ai_provider="openai"), 400,
                 "invalid_parameter", field="ai_provider", reason="not_configured")  # fmt: skip
    read_only = (await api.state.keys.create(account, mode="test", scope="read")).secret
    assert_error(await create(api, read_only, name="A"), 403, "insufficient_permissions")
    listed = (await api.client.get(AVATARS, headers=api.auth(key))).json()["data"]
    assert not [a for a in listed if a["owner"] == "account"]  # nothing was created


async def test_patch_replaces_the_fields_it_names(api: Api) -> None:
    key = await api.key()
    avatar = (await create(api, key, name="Nova", voices={"espeak": "en-us+f3",
                                                          "browser": "default"},
                           tone="warm")).json()  # fmt: skip
    path = f"{AVATARS}/{avatar['id']}"
    patched = await api.client.patch(
        path,
        json={"voices": {"espeak": "en-gb+f2"}, "tone": None, "description": "New."},
        headers=api.auth(key),
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["voices"] == {"espeak": "en-gb+f2"}  # nested objects are replaced whole
    assert body["tone"] is None and body["description"] == "New." and body["name"] == "Nova"
    assert body["updated_at"] >= avatar["updated_at"]
    assert_error(await api.client.patch(path, json={"name": None}, headers=api.auth(key)),
                 400, "missing_parameter", field="name")  # fmt: skip
    for method in ("PATCH", "DELETE"):
        refused = await api.client.request(
            method, f"{AVATARS}/aria-001", json={"name": "Mine"} if method == "PATCH" else None,
            headers=api.auth(key),
        )  # fmt: skip
        assert_error(refused, 403, "insufficient_permissions", reason="preset_read_only")


async def test_a_conversation_uses_its_custom_avatar_and_ends_with_it(api: Api) -> None:
    key = await api.key()
    created = await create(
        api,
        key,
        name="Nova",
        personality="You are Nova, the Acme Rockets guide.",
        voices={"espeak": "en-gb+f2"},
        tts_provider="espeak",
    )
    avatar = created.json()
    conversation = await api.conversation(key, avatar_id=avatar["id"])
    assert conversation["avatar_id"] == avatar["id"]
    assert conversation["config"]["voice_id"] == "en-gb+f2"
    path = f"/v1/conversations/{conversation['id']}"
    sent = await api.client.post(
        f"{path}/messages", json={"content": "Hello!", "tts": False}, headers=api.auth(key)
    )
    assert sent.status_code == 200, sent.text
    # Another account cannot start a conversation with it.
    other = await api.key()
    refused = await api.client.post(
        "/v1/conversations", json={"avatar_id": avatar["id"]}, headers=api.auth(other)
    )
    assert_error(refused, 404, "avatar_not_found")
    deleted = await api.client.delete(f"{AVATARS}/{avatar['id']}", headers=api.auth(key))
    assert deleted.json() == {"id": avatar["id"], "object": "avatar", "deleted": True}
    ended = (await api.client.get(path, headers=api.auth(key))).json()
    assert ended["status"] == "ended" and len(ended["messages"]) == 2  # kept, readable
    after = await api.client.post(
        f"{path}/messages", json={"content": "Still there?"}, headers=api.auth(key)
    )
    assert_error(after, 400, "invalid_request", reason="conversation_ended")
    assert_error(await api.client.get(f"{AVATARS}/{avatar['id']}", headers=api.auth(key)),
                 404, "avatar_not_found")  # fmt: skip


async def test_the_greeting_is_the_first_spoken_message(api: Api) -> None:
    key = await api.key()
    created = await create(api, key, name="Nova", greeting="Hi, I'm Nova. Ask me anything!")
    conversation = await api.conversation(key, avatar_id=created.json()["id"])
    assert conversation["message_count"] == 1
    path = f"/v1/conversations/{conversation['id']}"
    (greeting,) = (await api.client.get(f"{path}/messages", headers=api.auth(key))).json()["data"]
    assert greeting["role"] == "assistant" and greeting["content"].startswith("Hi, I'm Nova")
    assert greeting["audio"]["duration_ms"] > 500 and greeting["audio_url"]
    assert greeting["usage"]["tts_characters"] == len("Hi, I'm Nova. Ask me anything!")
    audio = await api.client.get(greeting["audio_url"].replace("http://testserver", ""))
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
    usage = (await api.client.get("/v1/usage", headers=api.auth(key))).json()
    assert usage["messages"]["used"] == 0  # not a message of the quota
    assert usage["tts_characters"] == greeting["usage"]["tts_characters"]
    sent = await api.client.post(
        f"{path}/messages", json={"content": "Hello!", "tts": False}, headers=api.auth(key)
    )
    assert sent.status_code == 200, sent.text
    listed = (await api.client.get(f"{path}/messages", headers=api.auth(key))).json()["data"]
    assert [m["role"] for m in listed] == ["assistant", "user", "assistant"]
    usage = (await api.client.get("/v1/usage", headers=api.auth(key))).json()
    assert usage["messages"]["used"] == 1


async def test_sends_follow_the_avatars_current_personality(api: Api) -> None:
    import secrets

    from avatarium.providers.registry import ProviderSpec
    from tests.support import ScriptedLLM

    llm = ScriptedLLM(f"scripted-{secrets.token_hex(3)}")
    api.state.providers.register(ProviderSpec(llm.name, "llm", lambda _s: llm))
    account = await api.state.accounts.ensure(f"acct-current-{id(api)}", "enterprise")
    key = (await api.state.keys.create(account, mode="live")).secret
    avatar = (
        await create(api, key, name="Nova", personality="You are Nova.", tts_provider="browser",
                     ai_provider=llm.name)
    ).json()  # fmt: skip
    conversation = await api.conversation(key, avatar_id=avatar["id"])
    own = await api.conversation(key, avatar_id=avatar["id"], system_prompt="You are Zed.")
    path = f"/v1/conversations/{conversation['id']}/messages"
    await api.client.post(path, json={"content": "Hi"}, headers=api.auth(key))
    await api.client.patch(
        f"{AVATARS}/{avatar['id']}", json={"personality": "You are Nova 2."},
        headers=api.auth(key),
    )  # fmt: skip
    await api.client.post(path, json={"content": "Hi again"}, headers=api.auth(key))
    await api.client.post(
        f"/v1/conversations/{own['id']}/messages", json={"content": "Hi"}, headers=api.auth(key)
    )
    systems = [request.messages[0].content for request in llm.requests]
    assert systems == ["You are Nova.", "You are Nova 2.", "You are Zed."]


async def test_a_client_token_reads_its_own_conversations_avatar(api: Api) -> None:
    key = await api.key(mode="live")
    auth = api.auth(key)
    mine = (await api.client.post("/v1/avatars", json={"name": "Nova"}, headers=auth)).json()
    other = (await api.client.post("/v1/avatars", json={"name": "Vega"}, headers=auth)).json()
    conversation = await api.conversation(key, avatar_id=mine["id"])
    token = (
        await api.client.post(
            f"/v1/conversations/{conversation['id']}/client_tokens", json={}, headers=auth
        )
    ).json()["token"]
    with_token = api.auth(token)
    got = await api.client.get(f"/v1/avatars/{mine['id']}", headers=with_token)
    assert got.status_code == 200 and got.json()["id"] == mine["id"]
    model = await api.client.get(f"/v1/avatars/{mine['id']}/model", headers=with_token)
    assert model.status_code == 200 and model.json()["model_url"] == got.json()["model_url"]
    for path in (f"/v1/avatars/{other['id']}", "/v1/avatars/aria-001"):
        refused = await api.client.get(path, headers=with_token)
        assert_error(refused, 403, "insufficient_permissions", reason="client_token_scope")
    changed = await api.client.patch(
        f"/v1/avatars/{mine['id']}", json={"name": "X"}, headers=with_token
    )
    assert changed.status_code == 403
