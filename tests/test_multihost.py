"""Several hosts: two server processes on different ports, each with its own data directory,
sharing PostgreSQL, Redis and an S3-compatible audio store (SeaweedFS), driven round-robin.

Limits and quota hold exactly across both, an audio URL one issues is served by the other, a
key revoked through one is refused by the other at once, background jobs (webhook deliveries,
knowledge ingestion) run exactly once, and ``avatarium gc`` on both at the same time deletes
each old conversation once and nothing live.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from avatarium.storage.db import Database
from tests.conftest import create_postgres_database, drop_postgres_database, service_missing
from tests.fakes.receiver import start_receiver
from tests.s3_server import S3Server
from tests.test_jobs import db_rows
from tests.test_limits import REDIS_URL
from tests.test_limits_process import start
from tests.test_limits_workers import cli
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


@dataclass
class Cluster:
    """Two hosts and what they share."""

    envs: list[dict[str, str]]
    bases: list[str]
    processes: list[subprocess.Popen[bytes]]
    s3: S3Server
    bucket: str
    database_url: str

    def base(self, n: int) -> str:
        """Round-robin: the n-th request goes to this host."""
        return self.bases[n % len(self.bases)]

    def key(self, account: str, *limits: str) -> dict[str, str]:
        """A new key on its own account (enterprise, with ``limits`` as set-limits flags)."""
        env = self.envs[0]
        issued = json.loads(
            cli(env, "keys", "create", "--account", account, "--tier", "enterprise", "--json")
        )
        if limits:
            cli(env, "accounts", "set-limits", account, *limits)
        return {"Authorization": f"Bearer {issued['key']}", "X-Key-Id": issued["id"]}


def db_write(url: str, sql: str, **params: Any) -> None:
    async def run() -> None:
        db = Database(url)
        try:
            await db.write_core(lambda c: c.execute(text(sql), params))
        finally:
            await db.dispose()

    asyncio.run(run())


def ensure_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        service_missing("Redis", error)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[Cluster]:
    ensure_redis()
    url = asyncio.run(create_postgres_database())
    bucket = s3_server.new_bucket()
    root = tmp_path_factory.mktemp("hosts")
    shared = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AVATARIUM_")},
        "AVATARIUM_DATABASE_URL": url,
        "AVATARIUM_REDIS_URL": REDIS_URL,
        # Every host needs the same secret: API keys are stored as keyed hashes, audio URLs
        # are signed, webhook secrets sealed with it.
        "AVATARIUM_SECRET_KEY": "multi-host-secret",
        "AVATARIUM_WEBHOOK_ALLOW_PRIVATE": "true",
        "AVATARIUM_JOB_POLL_S": "0.2",
        "AVATARIUM_GC_INTERVAL_S": "0",
        "AVATARIUM_LOCAL_MAX_TOKENS": "12",
        "AVATARIUM_LOG_LEVEL": "warning",
        **s3_server.env(bucket),
    }
    envs = [{**shared, "AVATARIUM_DATA_DIR": str(root / name)} for name in ("a", "b")]
    started: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        for env in envs:  # one after the other: the first migrates the shared database
            started.append(start(env))
        yield Cluster(
            envs, [b for _p, b in started], [p for p, _b in started], s3_server, bucket, url
        )
    finally:
        for process, _base in started:
            process.terminate()
            process.wait(timeout=30)
        asyncio.run(drop_postgres_database(url))


async def _spread(cluster: Cluster, calls: list[tuple[str, str, dict[str, Any] | None]],
                  headers: dict[str, str]) -> list[httpx.Response]:  # fmt: skip
    """Make every (method, path, body) call at once, alternating hosts."""
    async with httpx.AsyncClient(
        timeout=120, limits=httpx.Limits(max_connections=200), headers=headers
    ) as client:
        return await asyncio.gather(
            *(
                client.request(method, f"{cluster.base(n)}{path}", json=body)
                for n, (method, path, body) in enumerate(calls)
            )
        )


def test_limits_and_quota_hold_exactly_across_hosts(cluster: Cluster) -> None:
    rpm = cluster.key("mh-rpm", "--rpm", "40", "--concurrent", "1000")
    answers = asyncio.run(_spread(cluster, [("GET", "/v1/conversations", None)] * 120, rpm))
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {200: 40, 429: 80}, statuses

    quota = cluster.key("mh-quota", "--monthly-messages", "5", "--rpm", "1000")
    conversations = [
        httpx.post(f"{cluster.base(n)}/v1/conversations", headers=quota, timeout=30,
                   json={"avatar_id": "aria-001", "tts_provider": "browser"}).json()["id"]
        for n in range(12)
    ]  # fmt: skip
    sends = [("POST", f"/v1/conversations/{c}/messages", {"content": "Hi"}) for c in conversations]
    answers = asyncio.run(_spread(cluster, sends, quota))
    codes = Counter(
        r.status_code if r.status_code == 200 else r.json()["error"]["code"] for r in answers
    )
    assert codes == {200: 5, "quota_exceeded": 7}, codes


def spoken_reply(base: str, auth: dict[str, str]) -> tuple[str, str]:
    """A new conversation on ``base`` and its first reply's audio URL."""
    conversation = httpx.post(
        f"{base}/v1/conversations", headers=auth, json={"avatar_id": "aria-001"}
    ).json()
    sent = httpx.post(
        f"{base}/v1/conversations/{conversation['id']}/messages",
        headers=auth, json={"content": "Hello!"}, timeout=60,
    )  # fmt: skip
    assert sent.status_code == 200, sent.text
    return conversation["id"], sent.json()["audio"]["url"]


def test_an_audio_url_from_one_host_is_served_by_the_other(cluster: Cluster) -> None:
    auth = cluster.key("mh-audio")
    _conversation, url = spoken_reply(cluster.base(0), auth)
    assert url.startswith(cluster.base(0))
    here = httpx.get(url)
    there = httpx.get(url.replace(cluster.base(0), cluster.base(1)))
    assert here.status_code == there.status_code == 200
    assert there.content == here.content and len(there.content) > 1000
    assert not (Path(cluster.envs[0]["AVATARIUM_DATA_DIR"]) / "audio").exists()


def test_a_key_revoked_through_one_host_is_refused_by_the_other(cluster: Cluster) -> None:
    auth = cluster.key("mh-revoke")
    for n in range(2):
        assert httpx.get(f"{cluster.base(n)}/v1/conversations", headers=auth).status_code == 200
    cli(cluster.envs[0], "keys", "revoke", auth["X-Key-Id"])
    for n in range(2):
        refused = httpx.get(f"{cluster.base(n)}/v1/conversations", headers=auth)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"


def test_background_jobs_run_once_across_hosts(cluster: Cluster) -> None:
    auth = cluster.key("mh-jobs")
    receiver, received = start_receiver()
    try:
        hook = httpx.post(
            f"{cluster.base(0)}/v1/webhooks", headers=auth,
            json={"url": f"{receiver.url}/hook", "events": ["conversation.started"]},
        )  # fmt: skip
        assert hook.status_code == 200, hook.text
        avatar = httpx.post(
            f"{cluster.base(1)}/v1/avatars", headers=auth, json={"name": "Librarian"}
        ).json()
        started = 20
        for n in range(started):
            created = httpx.post(
                f"{cluster.base(n)}/v1/conversations", headers=auth,
                json={"avatar_id": "aria-001", "tts_provider": "browser"},
            )  # fmt: skip
            assert created.status_code == 200, created.text
        documents = []
        for n in range(6):
            uploaded = httpx.post(
                f"{cluster.base(n)}/v1/avatars/{avatar['id']}/knowledge", headers=auth,
                data={"type": "document"},
                files={"file": (f"notes-{n}.txt", f"Opening hours of branch {n}: 9 to 5.\n"
                                * 40, "text/plain")},
            )  # fmt: skip
            assert uploaded.status_code in (200, 202), uploaded.text
            documents.append(uploaded.json()["id"])

        def ready() -> bool:
            listed = httpx.get(
                f"{cluster.base(1)}/v1/avatars/{avatar['id']}/knowledge", headers=auth
            ).json()["data"]
            return all(item["status"] == "ready" for item in listed) and len(listed) == 6

        wait_until(ready, 60, "six documents ingested")
        wait_until(
            lambda: len({d.headers["webhook-id"] for d in received.at("/hook")}) == started,
            30, f"{started} distinct events at the receiver",
        )  # fmt: skip
        time.sleep(1.0)  # a duplicate delivery would have arrived by now
        deliveries = Counter(d.headers["webhook-id"] for d in received.at("/hook"))
        assert max(deliveries.values()) == 1, deliveries.most_common(3)
        jobs = db_rows(
            cluster.database_url,
            "SELECT attempts, status FROM jobs WHERE kind = 'knowledge.ingest'",
        )
        assert sorted(tuple(r) for r in jobs) == [(1, "done")] * 6
        chunks = db_rows(
            cluster.database_url,
            "SELECT k.id, k.chunks, count(c.id) FROM knowledge k "
            "LEFT JOIN knowledge_chunks c ON c.knowledge_id = k.id "
            "WHERE k.avatar_id = :a GROUP BY k.id, k.chunks", a=avatar["id"],
        )  # fmt: skip
        assert all(stated == stored and stored > 0 for _id, stated, stored in chunks), chunks
    finally:
        receiver.stop()


def test_gc_on_both_hosts_at_once_deletes_each_old_conversation_once(cluster: Cluster) -> None:
    auth = cluster.key("mh-gc")
    made = [spoken_reply(cluster.base(n), auth) for n in range(6)]
    ids, urls = [c for c, _url in made], [url for _c, url in made]
    old, live = ids[:3], ids[3:]
    old_clips = {
        r[0]
        for r in db_rows(
            cluster.database_url,
            "SELECT storage_key FROM audio_clips WHERE conversation_id IN (:a, :b, :c)",
            a=old[0], b=old[1], c=old[2],
        )
    }  # fmt: skip
    assert old_clips
    db_write(
        cluster.database_url,
        "UPDATE conversations SET updated_at = updated_at - interval '40 days' "
        "WHERE id IN (:a, :b, :c)", a=old[0], b=old[1], c=old[2],
    )  # fmt: skip
    gc = [sys.executable, "-m", "avatarium.cli", "gc"]
    runs = [
        subprocess.Popen(
            gc,
            env={**env, "AVATARIUM_RETENTION_DAYS": "30"},
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for env in cluster.envs
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs

    def reported(name: str) -> int:
        return sum(
            int(line.split(":")[1]) for out, _err in outputs for line in out.splitlines()
            if line.strip().startswith(f"{name}:")
        )  # fmt: skip

    assert reported("conversations") == 3
    assert reported("audio files") == len(old_clips)
    stored = {
        o["Key"].removeprefix("audio/")
        for o in cluster.s3.client().list_objects_v2(Bucket=cluster.bucket).get("Contents", [])
    }
    assert not old_clips & stored
    for n, (conversation_id, url) in enumerate(zip(ids, urls, strict=True)):
        got = httpx.get(f"{cluster.base(n + 1)}/v1/conversations/{conversation_id}", headers=auth)
        audio = httpx.get(url)
        if conversation_id in live:
            assert got.status_code == 200 and audio.status_code == 200
        else:
            assert got.status_code == 404 and audio.status_code == 404
