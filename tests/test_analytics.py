"""Analytics overview and transcript export (SPEC section 11): the numbers equal what the
test did, exports parse with csv/json and hold one row per message, and another account's
or the other mode's data never appears."""

from __future__ import annotations

import csv
import io
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from avatarium.analytics.rollup import bucket_of, bucket_value
from tests.support import Api, assert_error

FIELDS = [
    "conversation_id", "avatar_id", "message_id", "role", "content", "created_at",
    "ai_tokens", "tts_characters", "stt_seconds", "escalated",
]  # fmt: skip


async def _account(api: Api) -> tuple[str, str, str]:
    """A live-free pair of keys (test mode) on one new account, and a stranger's key."""
    name = f"acct-{secrets.token_hex(4)}"
    await api.state.accounts.ensure(name, "enterprise")
    return (
        await api.key(account=name, mode="test"),
        await api.key(account=name, mode="live"),
        await api.key(),
    )


async def _send(api: Api, key: str, conversation_id: str, content: str) -> dict[str, Any]:
    response = await api.client.post(
        f"/v1/conversations/{conversation_id}/messages",
        headers=api.auth(key),
        json={"content": content, "tts": False},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_overview_counts_what_happened(api: Api) -> None:
    key, live, stranger = await _account(api)
    avatar = (
        await api.client.post(
            "/v1/avatars",
            headers=api.auth(key),
            json={
                "name": "Counter",
                "tts_provider": "browser",
                "escalation": {"triggers": ["asked_for_human"], "message": "A person."},
            },
        )
    ).json()
    first = await api.conversation(key, tts_provider="browser")
    second = await api.conversation(key, avatar_id=avatar["id"])
    idle = await api.conversation(key, avatar_id=avatar["id"])  # no message: not completed
    await _send(api, key, first["id"], "Hello there.")
    await _send(api, key, first["id"], "How are you?")
    await _send(api, key, second["id"], "I want to talk to a human")  # escalated
    await api.conversation(stranger)  # another account: never counted
    await api.conversation(live)  # the other mode: never counted
    response = await api.client.get("/v1/analytics/overview?period=7d", headers=api.auth(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["conversations"] == 3
    assert body["messages"] == 6
    assert body["escalations"] == 1
    assert body["completion_rate"] == round(1 / 3, 4)  # only the first replied and stayed
    assert body["ai_tokens"] > 0 and body["tts_characters"] == 0
    assert body["stt_seconds"] == 0
    top = {a["avatar_id"]: a for a in body["top_avatars"]}
    assert top[avatar["id"]] == {"avatar_id": avatar["id"], "name": "Counter", "conversations": 2}
    assert top["aria-001"]["conversations"] == 1
    assert body["top_avatars"][0]["avatar_id"] == avatar["id"]  # most conversations first
    today = datetime.now(UTC).date()
    assert [d["date"] for d in body["by_day"]] == [
        (today - timedelta(days=n)).isoformat() for n in range(6, -1, -1)
    ]
    assert body["by_day"][-1] == {"date": today.isoformat(), "conversations": 3, "messages": 6}
    assert all(d["conversations"] == 0 for d in body["by_day"][:-1])  # days with zero too
    assert body["period"]["end"] == f"{(today + timedelta(days=1)).isoformat()}T00:00:00.000Z"
    # Durations: the mean of (last - first message) over conversations with messages.
    stored = await api.client.get(f"/v1/conversations/{first['id']}", headers=api.auth(key))
    times = [
        datetime.fromisoformat(m["created_at"].replace("Z", "+00:00"))
        for m in stored.json()["messages"]
    ]
    escalated = await api.client.get(f"/v1/conversations/{second['id']}", headers=api.auth(key))
    times2 = [
        datetime.fromisoformat(m["created_at"].replace("Z", "+00:00"))
        for m in escalated.json()["messages"]
    ]
    expected = ((times[-1] - times[0]) + (times2[-1] - times2[0])).total_seconds() / 2
    assert abs(body["avg_duration_s"] - expected) <= 0.1, (body["avg_duration_s"], expected)
    assert idle["message_count"] == 0
    # Latency: within a bucket (5 %) of the slowest/fastest reply's measured time.
    p50, p95 = body["latency_ms"]["p50"], body["latency_ms"]["p95"]
    assert 0 < p50 <= p95
    # The stranger sees only their own conversation.
    theirs = (await api.client.get("/v1/analytics/overview", headers=api.auth(stranger))).json()
    assert theirs["conversations"] == 1 and theirs["messages"] == 0


async def test_overview_parameters_are_checked(api: Api) -> None:
    key = await api.key()
    cases = [
        ("period=1y", "period"),
        ("start=yesterday", "start"),
        ("end=2025-13-01", "end"),
        ("start=2025-01-10&end=2025-01-01", "end"),
        ("start=2020-01-01&end=2025-01-01", "start"),
        ("period=7d&start=2025-01-01", "period"),
        ("start=2025-01-01T10:00:00", "start"),  # no zone
        ("colour=red", "colour"),
    ]
    for query, field in cases:
        response = await api.client.get(f"/v1/analytics/overview?{query}", headers=api.auth(key))
        assert_error(response, 400, "invalid_parameter", field=field)
    fine = await api.client.get(
        "/v1/analytics/overview?start=2025-01-01&end=2025-01-03T12:00:00Z", headers=api.auth(key)
    )
    body = fine.json()
    assert [d["date"] for d in body["by_day"]] == ["2025-01-01", "2025-01-02", "2025-01-03"]
    assert body["conversations"] == 0 and body["latency_ms"] == {"p50": None, "p95": None}
    assert body["completion_rate"] is None and body["avg_duration_s"] is None


async def test_exports_parse_and_hold_one_row_per_message(api: Api) -> None:
    key, live, stranger = await _account(api)
    one = await api.conversation(key, tts_provider="browser")
    two = await api.conversation(key, tts_provider="browser")
    tricky = 'Commas, "quotes"\nand a new line, é ✓'
    await _send(api, key, one["id"], tricky)
    await _send(api, key, two["id"], "Second conversation.")
    await _send(api, key, one["id"], "Third send.")
    theirs = await api.conversation(stranger, tts_provider="browser")
    await _send(api, stranger, theirs["id"], "Not yours.")
    messages = []
    for conversation in (one, two):
        page = await api.client.get(
            f"/v1/conversations/{conversation['id']}/messages", headers=api.auth(key)
        )
        messages += page.json()["data"]
    expected = {m["id"]: m for m in messages}
    assert len(expected) == 6

    response = await api.client.get("/v1/conversations?format=csv", headers=api.auth(key))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == FIELDS
    assert {r["message_id"] for r in rows} == set(expected)  # one row per message, no other
    assert len(rows) == 6
    by_id = {r["message_id"]: r for r in rows}
    for message_id, message in expected.items():
        row = by_id[message_id]
        assert row["content"] == message["content"]
        assert row["role"] == message["role"] and row["created_at"] == message["created_at"]
        assert int(row["ai_tokens"]) == message["usage"]["ai_tokens"]
        assert row["escalated"] == "false"
    assert [r["conversation_id"] for r in rows] == [one["id"]] * 4 + [two["id"]] * 2

    lines = await api.client.get("/v1/conversations?format=jsonl", headers=api.auth(key))
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    parsed = [json.loads(line) for line in lines.text.splitlines()]
    assert [p["message_id"] for p in parsed] == [r["message_id"] for r in rows]
    assert all(list(p) == FIELDS for p in parsed)
    assert parsed[0]["content"] == tricky

    # start/end select conversations by when they started; the other mode has none.
    later = await api.client.get(
        f"/v1/conversations?format=jsonl&start={two['created_at']}", headers=api.auth(key)
    )
    assert {json.loads(x)["conversation_id"] for x in later.text.splitlines()} == {two["id"]}
    empty = await api.client.get("/v1/conversations?format=csv", headers=api.auth(live))
    assert empty.text.strip() == ",".join(FIELDS)
    bad = await api.client.get("/v1/conversations?format=xml", headers=api.auth(key))
    assert_error(bad, 400, "invalid_parameter", field="format")
    bad = await api.client.get("/v1/conversations?format=csv&start=soon", headers=api.auth(key))
    assert_error(bad, 400, "invalid_parameter", field="start")


async def test_exports_page_through_many_messages(api: Api) -> None:
    """More messages than one database read holds: every one comes out once, in order."""
    from avatarium.analytics import service

    key = await api.key()
    conversation = await api.conversation(key, tts_provider="browser")
    original = service.EXPORT_BATCH
    service.EXPORT_BATCH = 3  # a page boundary inside the conversation, several times
    try:
        for n in range(4):
            await _send(api, key, conversation["id"], f"Message {n}.")
        response = await api.client.get("/v1/conversations?format=jsonl", headers=api.auth(key))
    finally:
        service.EXPORT_BATCH = original
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert len(rows) == 8 and len({r["message_id"] for r in rows}) == 8
    assert [r["content"] for r in rows if r["role"] == "user"] == [
        f"Message {n}." for n in range(4)
    ]


def test_latency_buckets_stay_within_a_few_percent() -> None:
    for ms in [2, 3, 10, 57, 240, 999, 1_234, 8_000, 60_000]:
        value = bucket_value(bucket_of(ms))
        assert abs(value - ms) / ms <= 0.025 + 1e-9, (ms, value)


async def test_a_rebuild_gives_the_same_roll_ups(api: Api) -> None:
    from sqlalchemy import select, text

    from avatarium.analytics.models import ActivityDay
    from avatarium.analytics.rollup import rebuild

    key = await api.key()
    conversation = await api.conversation(key, tts_provider="browser")
    await _send(api, key, conversation["id"], "Count me.")

    account_id = (await api.state.keys.authenticate(key)).account_id

    # This account's rows only: other tests on the shared app delete conversations, whose
    # counts the roll-ups keep and a rebuild from what is stored cannot know.
    def snapshot(connection: Any) -> list[Any]:
        columns = ActivityDay.__table__.columns
        query = select(*columns).where(ActivityDay.account_id == account_id)
        rows = connection.execute(query.order_by(*columns)).all()
        latency = connection.execute(
            text("SELECT * FROM latency_daily WHERE account_id = :a ORDER BY 1, 2, 3, 4"),
            {"a": account_id},
        ).all()
        return [list(rows), list(latency)]

    before = await api.state.db.read_core(snapshot)
    await api.state.db.write_core(rebuild)
    after = await api.state.db.read_core(snapshot)
    assert before == after
