"""Client tokens: good for one conversation's reads, sends and socket; nothing else."""

from __future__ import annotations

from datetime import datetime

from tests.support import Api, assert_error


async def issue(api: Api, key: str, conversation_id: str, **body: object) -> dict[str, object]:
    response = await api.client.post(
        f"/v1/conversations/{conversation_id}/client_tokens", json=body, headers=api.auth(key)
    )
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


async def test_a_token_reads_and_sends_to_its_own_conversation(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key, tts_provider="browser")
    cid = conversation["id"]
    issued = await issue(api, key, cid)
    assert issued["object"] == "client_token" and issued["conversation_id"] == cid
    token = str(issued["token"])
    assert token.startswith("ct_") and key not in token
    expires = datetime.fromisoformat(str(issued["expires_at"]).replace("Z", "+00:00"))
    remaining = (expires - api.clock.now()).total_seconds()
    assert 890 <= remaining <= 900  # 15 minutes by default
    auth = api.auth(token)
    sent = await api.client.post(
        f"/v1/conversations/{cid}/messages", json={"content": "Hello!"}, headers=auth
    )
    assert sent.status_code == 200, sent.text
    assert sent.headers["x-ratelimit-limit"]  # the account's limits apply
    for path in (
        f"/v1/conversations/{cid}",
        f"/v1/conversations/{cid}/messages",
        f"/v1/conversations/{cid}/messages/{sent.json()['id']}",
    ):
        response = await api.client.get(path, headers=auth)
        assert response.status_code == 200, (path, response.text)


async def test_anything_else_with_a_token_is_forbidden(api: Api) -> None:
    key = await api.key()
    mine = await api.conversation(key)
    other = await api.conversation(key)
    token = str((await issue(api, key, mine["id"]))["token"])
    auth = api.auth(token)
    cases = [
        ("GET", f"/v1/conversations/{other['id']}", None),
        ("GET", f"/v1/conversations/{other['id']}/messages", None),
        ("POST", f"/v1/conversations/{other['id']}/messages", {"content": "hi"}),
        ("GET", "/v1/conversations", None),
        ("POST", "/v1/conversations", {"avatar_id": "aria-001"}),
        ("DELETE", f"/v1/conversations/{mine['id']}", None),
        ("POST", f"/v1/conversations/{mine['id']}/end", None),
        ("POST", f"/v1/conversations/{mine['id']}/client_tokens", None),
        ("GET", "/v1/usage", None),
        ("POST", "/v1/tts", {"text": "hi"}),
    ]
    for method, path, body in cases:
        response = await api.client.request(method, path, json=body, headers=auth)
        assert_error(response, 403, "insufficient_permissions", reason="client_token_scope")
    assert (await api.client.get(f"/v1/conversations/{mine['id']}", headers=auth)).is_success


async def test_expired_forged_and_revoked_tokens_are_401(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    cid = conversation["id"]
    path = f"/v1/conversations/{cid}"
    short = str((await issue(api, key, cid, expires_in=10))["token"])
    assert (await api.client.get(path, headers=api.auth(short))).status_code == 200
    api.clock.advance(11)
    assert_error(await api.client.get(path, headers=api.auth(short)), 401, "expired_api_key")
    api.clock.offset = type(api.clock.offset)()
    token = str((await issue(api, key, cid))["token"])
    payload, _, signature = token.partition(".")
    for forged in (payload + ".AAAA", payload[:-2] + "xx." + signature, "ct_", "ct_.x"):
        response = await api.client.get(path, headers=api.auth(forged))
        assert_error(response, 401, "invalid_api_key")
    # Revoking the key that issued a token revokes the token.
    key_id = (await api.state.keys.authenticate(key)).key_id
    await api.state.keys.revoke(key_id)
    assert_error(await api.client.get(path, headers=api.auth(token)), 401, "invalid_api_key")


async def test_issuing_checks_the_conversation_and_the_lifetime(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    url = f"/v1/conversations/{conversation['id']}/client_tokens"
    for value, reason in [(5, "out_of_range"), (86_401, "out_of_range"), ("60", "invalid_type")]:
        response = await api.client.post(url, json={"expires_in": value}, headers=api.auth(key))
        assert_error(response, 400, "invalid_parameter", field="expires_in", reason=reason)
    stranger = await api.key()
    response = await api.client.post(url, headers=api.auth(stranger))
    assert_error(response, 404, "conversation_not_found")
    read_only = await api.key(scope="read")
    response = await api.client.post(url, headers=api.auth(read_only))
    assert_error(response, 403, "insufficient_permissions")
