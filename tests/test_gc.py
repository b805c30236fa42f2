"""``avatarium gc``: expired reservations and idempotency records, old conversations (with
``AVATARIUM_RETENTION_DAYS``) with their audio, and audio no row points at, go; anything
live stays; two collectors at once delete nothing twice. Both databases."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from avatarium.conversations.models import Conversation, IdempotentResponse
from avatarium.maintenance.gc import GarbageCollector
from avatarium.usage.models import QuotaReservation
from tests.conftest import postgres_database, start_api
from tests.s3_server import S3Server
from tests.support import Api, OffsetClock


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "sqlite+s3"])
async def own(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    """An app on a database of its own: these tests make every conversation old. The third
    keeps its audio in the S3-compatible store."""
    data_dir = tmp_path_factory.mktemp(f"gc-{request.param}")
    if request.param == "postgresql":
        async with postgres_database() as url:
            async for api in start_api(request.param, data_dir, url, gc_interval_s=0):
                yield api
        return
    extra: dict[str, object] = {}
    if request.param == "sqlite+s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        extra = s3.settings(s3.new_bucket())
    async for api in start_api(request.param, data_dir, None, gc_interval_s=0, **extra):
        yield api


def collector(api: Api, days_later: float, retention_days: int | None) -> GarbageCollector:
    clock = OffsetClock()
    clock.offset = timedelta(days=days_later)
    settings = api.state.settings
    return GarbageCollector(
        api.state.db, clock, api.state.audio,
        idempotency_ttl_s=settings.idempotency_ttl_s,
        webhook_window_s=settings.webhook_retry_window_s,
        retention_days=retention_days,
    )  # fmt: skip


async def count(api: Api, entity: type) -> int:
    return int(
        await api.state.db.read_core(
            lambda c: c.execute(select(func.count()).select_from(entity)).scalar_one()
        )
    )


async def spoken_conversation(api: Api, key: str) -> dict[str, Any]:
    """A conversation with one spoken reply."""
    conversation = await api.conversation(key)
    sent = await api.client.post(
        f"/v1/conversations/{conversation['id']}/messages", headers=api.auth(key),
        json={"content": "Hello!"},
    )  # fmt: skip
    assert sent.status_code == 200 and sent.json()["audio"] is not None
    return conversation


async def test_old_conversations_and_their_audio_go_live_ones_stay(own: Api) -> None:
    api = own
    key = await api.key()
    old = await spoken_conversation(api, key)
    files_before = await api.stored_audio()
    assert files_before
    # Without retention nothing of a conversation goes, however old.
    assert (await collector(api, 400, None).run()).conversations == 0
    # With 30 days' retention, 31 days later: gone, with its messages and audio.
    report = await collector(api, 31, 30).run()
    assert report.conversations >= 1 and report.audio_files >= len(files_before)
    gone = await api.client.get(f"/v1/conversations/{old['id']}", headers=api.auth(key))
    assert gone.status_code == 404
    assert await api.stored_audio() == set()
    fresh = await api.conversation(key)
    again = await collector(api, 0, 30).run()
    assert again.conversations == 0  # a fresh conversation stays
    kept = await api.client.get(f"/v1/conversations/{fresh['id']}", headers=api.auth(key))
    assert kept.status_code == 200


async def test_expired_claims_and_orphaned_audio_go(own: Api) -> None:
    api = own
    account = await api.state.accounts.ensure("gc-claims", "free")
    now = api.clock.now()

    def seed(connection: object) -> None:
        connection.execute(  # type: ignore[attr-defined]
            insert(QuotaReservation),
            [{"id": "res_expired", "account_id": account.id, "period": "2025-01",
              "expires_at": now - timedelta(minutes=1)},
             {"id": "res_live", "account_id": account.id, "period": "2025-01",
              "expires_at": now + timedelta(minutes=5)}],
        )  # fmt: skip
        connection.execute(  # type: ignore[attr-defined]
            insert(IdempotentResponse),
            [{"account_id": account.id, "mode": "test", "idempotency_key": "old",
              "endpoint": "POST /v1/conversations", "body_hash": "x", "status_code": 200,
              "response_body": "{}", "created_at": now - timedelta(days=2),
              "lease_expires_at": None},
             {"account_id": account.id, "mode": "test", "idempotency_key": "new",
              "endpoint": "POST /v1/conversations", "body_hash": "x", "status_code": 200,
              "response_body": "{}", "created_at": now, "lease_expires_at": None}],
        )  # fmt: skip

    await api.state.db.write_core(seed)
    report = await collector(api, 0, None).run()
    assert report.reservations == 1 and report.idempotency_records == 1
    ids = await api.state.db.read_core(
        lambda c: set(c.execute(select(QuotaReservation.id)).scalars())
    )
    assert "res_live" in ids and "res_expired" not in ids


async def test_audio_no_row_points_at_goes_after_an_hour(own: Api) -> None:
    api = own
    await spoken_conversation(api, await api.key())
    live = await api.stored_audio()
    orphan = "aud_orphan0000000000000.mp3"  # a reply that crashed before its row committed
    await api.state.audio.put(orphan, b"ID3")
    # Fresh, it may still await its row: it stays.
    assert (await collector(api, 0, None).run()).audio_files == 0
    assert orphan in await api.stored_audio()
    # Two hours on, nothing points at it: it goes; every clip a row points at stays.
    report = await collector(api, 2 / 24, None).run()
    assert report.audio_files == 1
    assert await api.stored_audio() == live


async def test_two_collectors_at_once_delete_each_thing_once(own: Api) -> None:
    api = own
    key = await api.key()
    for _ in range(5):
        await api.conversation(key)
    before = await count(api, Conversation)
    reports = await asyncio.gather(*(collector(api, 40, 30).run() for _ in range(2)))
    assert sum(r.conversations for r in reports) == before
    assert await count(api, Conversation) == 0


def test_gc_is_a_command(tmp_path: Path) -> None:
    from tests.test_limits_workers import cli

    env = {**os.environ, "AVATARIUM_DATA_DIR": str(tmp_path)}
    env.pop("AVATARIUM_DATABASE_URL", None)
    out = cli(env, "gc")
    assert "reservations: 0" in out and "audio files: 0" in out
