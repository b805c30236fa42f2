"""Webhooks (SPEC section 10): every event type arrives at a loopback receiver with both
signatures verifying (checked with the Standard Webhooks reference library), retries follow
the schedule and are logged, 410 disables, targets on private addresses are refused at
registration and at delivery, redirects are not followed, and endpoints are isolated."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from avatarium.app import create_app
from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.registry import ProviderRegistry
from avatarium.webhooks.events import EVENT_TYPES
from tests.conftest import make_settings, postgres_database, start_api
from tests.fakes.receiver import Delivery, ReceiverState, start_receiver
from tests.fakes.server import FakeServer
from tests.support import Api, OffsetClock, assert_error, scripted_live_key
from tests.waiting import wait_for

RUN = secrets.token_hex(3)  # receiver paths differ per run
QUICK = {
    "webhook_allow_private": True,  # the receiver is on loopback
    "webhook_retry_base_s": 0.2,
    "webhook_retry_max_s": 0.4,
    "webhook_retry_window_s": 4.0,
    "job_poll_s": 0.1,
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[FakeServer]:
    server, state = start_receiver()
    server.receiver = state  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def hooks(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    """An app that may deliver to loopback, on a database of its own (so no other test
    app's workers, which refuse loopback, take its jobs)."""
    data_dir = tmp_path_factory.mktemp(f"hooks-{request.param}")
    if request.param == "postgresql":
        async with postgres_database() as url:
            async for api in start_api(request.param, data_dir, url, **QUICK):
                yield api
    else:
        async for api in start_api(request.param, data_dir, None, **QUICK):
            yield api


def over_asgi(app: Any) -> Api:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    return Api(app, client, OffsetClock(), "sqlite")


def state_of(receiver: FakeServer) -> ReceiverState:
    state = receiver.receiver  # type: ignore[attr-defined]
    assert isinstance(state, ReceiverState)
    return state


async def register(api: Api, key: str, url: str, events: list[str] | None = None) -> dict[str, Any]:
    response = await api.client.post(
        "/v1/webhooks", headers=api.auth(key), json={"url": url, "events": events or ["*"]}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def scripted_test_event(
    api: Api, receiver: FakeServer, name: str, answers: list[str]
) -> tuple[str, dict[str, Any], httpx.Response]:
    """A new account's endpoint at the receiver's ``/{name}-…`` answering ``answers`` (then
    200), and a test event sent to it."""
    key = await api.key(mode="live")
    hook = await register(api, key, f"{receiver.url}/{name}-{RUN}{api.backend}")
    state_of(receiver).scripts[f"/{name}-{RUN}{api.backend}"].extend(answers)
    sent = await api.client.post(f"/v1/webhooks/{hook['id']}/test", headers=api.auth(key))
    return key, hook, sent


def verified(delivery: Delivery, secret: str) -> dict[str, Any]:
    """The event, after both signatures were checked."""
    event: dict[str, Any] = StandardWebhook(secret).verify(delivery.body, delivery.headers)
    ours = hmac.new(secret.encode(), delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["x-avatarium-signature"] == f"sha256={ours}"
    assert delivery.headers["webhook-id"] == event["id"]
    assert set(event) == {"id", "type", "created_at", "data"}
    return event


async def received(receiver: FakeServer, path: str, count: int, what: str) -> list[Delivery]:
    async def enough() -> list[Delivery] | None:
        got = state_of(receiver).at(path)
        return got if len(got) >= count else None

    return await wait_for(enough, 20, what)


async def test_every_event_type_arrives_with_both_signatures(
    hooks: Api, receiver: FakeServer
) -> None:
    api = hooks
    key, llm = await scripted_live_key(api, "Happy to chat. Politics is a fun subject though.")
    auth = api.auth(key)
    hook = await register(api, key, f"{receiver.url}/all-{RUN}{api.backend}")
    assert hook["secret"].startswith("whsec_") and hook["enabled"] is True
    avatar = (
        await api.client.post(
            "/v1/avatars",
            headers=auth,
            json={
                "name": "Guard",
                "tts_provider": "browser",
                "topics_to_avoid": ["politics"],
                "escalation": {"triggers": ["asked_for_human"], "message": "A person will help."},
            },
        )
    ).json()
    conversation = await api.conversation(key, avatar_id=avatar["id"], ai_provider=llm.name)
    path = f"/v1/conversations/{conversation['id']}/messages"
    filtered = await api.client.post(path, headers=auth, json={"content": "Tell me a fun fact."})
    assert filtered.json()["safety"]["action"] == "filter_triggered", filtered.text
    blocked = await api.client.post(path, headers=auth, json={"content": "Politics, please?"})
    assert blocked.json()["safety"]["action"] == "topic_blocked", blocked.text
    handed = await api.client.post(path, headers=auth, json={"content": "I want a human"})
    assert handed.json()["safety"]["action"] == "escalated", handed.text
    await api.client.post(f"/v1/conversations/{conversation['id']}/end", headers=auth)
    second = await api.conversation(key, avatar_id=avatar["id"], ai_provider=llm.name)
    llm.fail = ProviderError(FailureCategory.UNAVAILABLE, llm.name, "down for the test")
    failed = await api.client.post(
        f"/v1/conversations/{second['id']}/messages", headers=auth, json={"content": "Hi"}
    )
    assert failed.status_code == 503, failed.text
    await api.client.patch(f"/v1/avatars/{avatar['id']}", headers=auth, json={"tone": "calm"})
    await api.client.delete(f"/v1/avatars/{avatar['id']}", headers=auth)

    async def all_types() -> list[dict[str, Any]] | None:
        events = [
            verified(d, hook["secret"]) for d in state_of(receiver).at(f"/all-{RUN}{api.backend}")
        ]
        return events if {e["type"] for e in events} >= set(EVENT_TYPES) else None

    events = await wait_for(all_types, 20, "all ten event types at the receiver")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event)
    # message.created fires for every stored message: 3 sends x (user + assistant).
    created = by_type["message.created"]
    assert len(created) == 6
    assert {e["data"]["message"]["role"] for e in created} == {"user", "assistant"}
    assert all(e["data"]["avatar_id"] == avatar["id"] for e in created)
    assert by_type["safety.topic_blocked"][0]["data"]["topic"] == "politics"
    assert by_type["safety.filter_triggered"][0]["data"]["topic"] == "politics"
    assert by_type["safety.escalation"][0]["data"]["trigger"] == "asked_for_human"
    assert by_type["conversation.escalated"][0]["data"]["reason"] == "asked_for_human"
    assert by_type["message.failed"][0]["data"]["error"]["code"] == "ai_provider_error"
    assert by_type["message.failed"][0]["data"]["conversation_id"] == second["id"]
    ended = {e["data"]["conversation"]["id"] for e in by_type["conversation.ended"]}
    assert ended == {conversation["id"], second["id"]}  # the second ended with its avatar
    assert by_type["avatar.updated"][0]["data"]["avatar"]["tone"] == "calm"
    assert by_type["avatar.deleted"][0]["data"]["avatar"]["id"] == avatar["id"]
    # No event twice, and none for the failed send's messages (nothing was stored).
    assert len({e["id"] for e in events}) == len(events)
    contents = {e["data"]["message"]["content"] for e in created}
    assert "Hi" not in contents


async def test_a_receiver_failing_twice_gets_the_event_on_the_third_attempt(
    hooks: Api, receiver: FakeServer
) -> None:
    api = hooks
    key, hook, sent = await scripted_test_event(api, receiver, "flaky", ["500", "500"])
    assert sent.status_code == 200, sent.text
    deliveries = await received(
        receiver, f"/flaky-{RUN}{api.backend}", 3, "three attempts at the receiver"
    )
    ids = {d.headers["webhook-id"] for d in deliveries}
    assert ids == {sent.json()["event_id"]}  # the same event id on every retry
    for delivery in deliveries:
        assert verified(delivery, hook["secret"])["type"] == "webhook.test"

    async def logged() -> list[dict[str, Any]] | None:
        page = await api.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=api.auth(key))
        rows: list[dict[str, Any]] = page.json()["data"]
        return rows if len(rows) == 3 else None

    rows = list(reversed(await wait_for(logged, 10, "three logged attempts")))
    assert [r["attempt"] for r in rows] == [1, 2, 3]
    assert [r["status_code"] for r in rows] == [500, 500, 200]
    assert [r["outcome"] for r in rows] == ["retrying", "retrying", "succeeded"]
    assert rows[0]["error"] and rows[2]["error"] is None
    assert all(r["object"] == "webhook_delivery" and r["event_type"] == "webhook.test"
               for r in rows)  # fmt: skip
    await wait_for(
        lambda: _no_more(receiver, f"/flaky-{RUN}{api.backend}", 3),
        1.5,
        "no attempt after the success",
    )
    # Sending one delivery again: a fourth attempt, numbered on.
    again = await api.client.post(
        f"/v1/webhooks/{hook['id']}/deliveries/{rows[0]['id']}/retry", headers=api.auth(key)
    )
    assert again.status_code == 200, again.text
    await received(receiver, f"/flaky-{RUN}{api.backend}", 4, "the manual retry")
    after = await wait_for(
        lambda: _deliveries(api, key, hook["id"], 4), 10, "the manual retry logged"
    )
    assert after[0]["attempt"] == 4 and after[0]["outcome"] == "succeeded"


async def _no_more(receiver: FakeServer, path: str, count: int) -> bool:
    await asyncio.sleep(1.0)
    return len(state_of(receiver).at(path)) == count


async def _deliveries(api: Api, key: str, hook_id: str, count: int) -> list[dict[str, Any]] | None:
    """The endpoint's logged attempts, newest first, once there are at least ``count``."""
    page = await api.client.get(f"/v1/webhooks/{hook_id}/deliveries", headers=api.auth(key))
    rows: list[dict[str, Any]] = page.json()["data"]
    return rows if len(rows) >= count else None


async def test_410_gone_disables_the_endpoint(hooks: Api, receiver: FakeServer) -> None:
    api = hooks
    key, hook, _sent = await scripted_test_event(api, receiver, "gone", ["410"])
    await received(receiver, f"/gone-{RUN}{api.backend}", 1, "the delivery answered 410")

    async def disabled() -> dict[str, Any] | None:
        body: dict[str, Any] = (
            await api.client.get(f"/v1/webhooks/{hook['id']}", headers=api.auth(key))
        ).json()
        return body if body["enabled"] is False else None

    body = await wait_for(disabled, 10, "the endpoint to be disabled")
    assert body["disabled_reason"] == "gone" and "secret" not in body
    rows = await wait_for(lambda: _deliveries(api, key, hook["id"], 1), 5, "the logged 410")
    assert rows[0]["status_code"] == 410 and rows[0]["outcome"] == "failed"
    refused = await api.client.post(f"/v1/webhooks/{hook['id']}/test", headers=api.auth(key))
    assert_error(refused, 400, "invalid_request", reason="webhook_disabled")
    # A conversation's events no longer go there.
    await api.conversation(key)
    await wait_for(
        lambda: _no_more(receiver, f"/gone-{RUN}{api.backend}", 1),
        2,
        "nothing more to a gone endpoint",
    )


async def test_a_redirect_is_not_followed(hooks: Api, receiver: FakeServer) -> None:
    api = hooks
    key = await api.key(mode="live")
    hook = await register(api, key, f"{receiver.url}/moved-{RUN}{api.backend}")
    state_of(receiver).scripts[f"/moved-{RUN}{api.backend}"].append(
        f"302:{receiver.url}/elsewhere-{RUN}{api.backend}"
    )
    await api.client.post(f"/v1/webhooks/{hook['id']}/test", headers=api.auth(key))
    rows = await wait_for(lambda: _deliveries(api, key, hook["id"], 1), 10, "the 302 logged")
    first = rows[-1]  # the oldest: later attempts (after the script) succeed
    assert first["status_code"] == 302 and "redirect" in first["error"]
    assert first["outcome"] == "retrying"
    assert state_of(receiver).at(f"/elsewhere-{RUN}{api.backend}") == []


async def test_failing_for_the_whole_window_marks_it_failed(
    hooks: Api, receiver: FakeServer
) -> None:
    api = hooks
    key, hook, _sent = await scripted_test_event(api, receiver, "down", ["500"] * 100)

    async def ended() -> list[dict[str, Any]] | None:
        page = await api.client.get(
            f"/v1/webhooks/{hook['id']}/deliveries?limit=100", headers=api.auth(key)
        )
        rows: list[dict[str, Any]] = page.json()["data"]
        return rows if rows and rows[0]["outcome"] == "failed" else None

    rows = await wait_for(ended, 15, "the retry window (4 s in this test) to run out")
    attempts = [r["attempt"] for r in reversed(rows)]
    assert attempts == list(range(1, len(rows) + 1)) and len(rows) >= 5
    assert all(r["outcome"] == "retrying" for r in rows[1:])
    count = len(state_of(receiver).at(f"/down-{RUN}{api.backend}"))
    await wait_for(
        lambda: _no_more(receiver, f"/down-{RUN}{api.backend}", count),
        2,
        "no attempt after failing",
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://localhost:9/hook",  # a name that resolves to loopback
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://100.100.100.200/hook",
    ],
)
async def test_private_targets_are_refused_at_registration(api: Api, url: str) -> None:
    key = await api.key()
    response = await api.client.post(
        "/v1/webhooks", headers=api.auth(key), json={"url": url, "events": ["*"]}
    )
    error = assert_error(response, 400, "invalid_parameter", field="url", reason="not_allowed")
    assert "public addresses" in error["message"]


async def test_a_target_that_became_private_is_refused_at_delivery(
    tmp_path: Path, receiver: FakeServer
) -> None:
    """Registered while allowed (as if the name were public then), delivered by a server
    that refuses private addresses (as if the DNS answer changed): nothing reaches it."""
    allowed = make_settings(tmp_path, None, **QUICK)
    first = create_app(allowed, providers=ProviderRegistry(allowed))
    async with first.router.lifespan_context(first):
        api = over_asgi(first)
        key = await api.key(mode="live")
        hook = await register(api, key, f"{receiver.url}/rebound-{RUN}{api.backend}")
    strict = make_settings(tmp_path, None, **{**QUICK, "webhook_allow_private": False})
    strict.secret_key = allowed.secret_key  # the same server secret: the same sealed secrets
    second = create_app(strict, providers=ProviderRegistry(strict))
    async with second.router.lifespan_context(second):
        api = over_asgi(second)
        await api.client.post(f"/v1/webhooks/{hook['id']}/test", headers=api.auth(key))
        rows = await wait_for(lambda: _deliveries(api, key, hook["id"], 1), 10, "the refusal")
    assert all(row["status_code"] is None for row in rows)
    assert all(row["error"].startswith("refused: 127.0.0.1 is a loopback") for row in rows)
    assert state_of(receiver).at(f"/rebound-{RUN}{api.backend}") == []


async def test_webhook_fields_are_validated(api: Api) -> None:
    key = await api.key()
    auth = api.auth(key)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"events": ["*"]}, "url", "missing"),
        ({"url": "ftp://example.com/x", "events": ["*"]}, "url", "invalid_type"),
        ({"url": "https://user:pw@example.com/", "events": ["*"]}, "url", "not_allowed"),
        ({"url": "https://example.com/", "events": []}, "events", "empty"),
        ({"url": "https://example.com/", "events": ["message.sent"]}, "events[0]", "not_allowed"),
        ({"url": "https://example.com/", "events": "*"}, "events", "invalid_type"),
        ({"url": "https://example.com/", "events": ["*"], "secret": "abc"}, "secret",
         "not_allowed"),
        ({"url": "https://example.com/", "events": ["*"], "colour": 1}, "colour",
         "unknown_field"),
    ]  # fmt: skip
    for body, field, reason in cases:
        response = await api.client.post("/v1/webhooks", headers=auth, json=body)
        code = "missing_parameter" if reason == "missing" else "invalid_parameter"
        assert_error(response, 400, code, field=field, reason=reason)


async def test_webhooks_belong_to_an_account_and_a_mode(hooks: Api, receiver: FakeServer) -> None:
    api = hooks
    name = f"acct-{secrets.token_hex(4)}"
    await api.state.accounts.ensure(name, "enterprise")
    key = await api.key(account=name, mode="live")
    hook = await register(
        api, key, f"{receiver.url}/mine-{RUN}{api.backend}", ["conversation.started"]
    )
    assert hook["events"] == ["conversation.started"]
    other = await api.key(mode="live")
    same_account_test = await api.key(account=name, mode="test")
    for stranger in (other, same_account_test):
        for method, path in [
            ("GET", f"/v1/webhooks/{hook['id']}"),
            ("PATCH", f"/v1/webhooks/{hook['id']}"),
            ("DELETE", f"/v1/webhooks/{hook['id']}"),
            ("POST", f"/v1/webhooks/{hook['id']}/test"),
            ("GET", f"/v1/webhooks/{hook['id']}/deliveries"),
            ("POST", f"/v1/webhooks/{hook['id']}/deliveries/whd_x/retry"),
        ]:
            body = {"enabled": False} if method == "PATCH" else None
            response = await api.client.request(method, path, headers=api.auth(stranger), json=body)
            assert_error(response, 404, "webhook_not_found")
        listed = await api.client.get("/v1/webhooks", headers=api.auth(stranger))
        assert hook["id"] not in json.dumps(listed.json())
    # Another account's conversation sends nothing to this endpoint; its own does.
    await api.conversation(other)
    mine = await api.conversation(key)
    got = await received(
        receiver, f"/mine-{RUN}{api.backend}", 1, "the account's own conversation.started"
    )
    event = verified(got[0], hook["secret"])
    assert event["data"]["conversation"]["id"] == mine["id"]
    await wait_for(
        lambda: _no_more(receiver, f"/mine-{RUN}{api.backend}", 1), 2, "no other account's events"
    )
    # The secret is shown once; PATCH and DELETE work for the owner.
    fetched = (await api.client.get(f"/v1/webhooks/{hook['id']}", headers=api.auth(key))).json()
    assert "secret" not in fetched
    patched = await api.client.patch(
        f"/v1/webhooks/{hook['id']}", headers=api.auth(key), json={"events": ["*"],
                                                                   "description": "CRM"},
    )  # fmt: skip
    assert patched.json()["events"] == ["*"] and patched.json()["description"] == "CRM"
    deleted = await api.client.delete(f"/v1/webhooks/{hook['id']}", headers=api.auth(key))
    assert deleted.json() == {"id": hook["id"], "object": "webhook", "deleted": True}
    gone = await api.client.get(f"/v1/webhooks/{hook['id']}", headers=api.auth(key))
    assert_error(gone, 404, "webhook_not_found")


async def test_a_given_secret_is_used_and_read_keys_cannot_write(hooks: Api) -> None:
    api = hooks
    key = await api.key(mode="live")
    reader = await api.key(mode="live", scope="read")
    refused = await api.client.post(
        "/v1/webhooks", headers=api.auth(reader), json={"url": "http://x.test/", "events": ["*"]}
    )
    assert_error(refused, 403, "insufficient_permissions")
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks example
    created = await api.client.post(
        "/v1/webhooks", headers=api.auth(key),
        json={"url": "http://127.0.0.1:9/x", "events": ["*"], "secret": secret},
    )  # fmt: skip
    assert created.json()["secret"] == secret
