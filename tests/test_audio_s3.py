"""Audio in an S3-compatible store (``AVATARIUM_AUDIO_STORE=s3://bucket/prefix``), tested
against a real one: SeaweedFS's S3 gateway, started by the test run."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from avatarium.app import build_audio_store
from avatarium.core.settings import Settings
from avatarium.storage.s3 import S3AudioStore, S3Location
from tests.conftest import start_api
from tests.s3_server import S3Server
from tests.support import Api, assert_ranges_served


def store_for(s3: S3Server, tmp_path: Path, bucket: str, prefix: str = "audio") -> S3AudioStore:
    store = build_audio_store(Settings(data_dir=tmp_path, **s3.settings(bucket, prefix)))  # type: ignore[arg-type]
    assert isinstance(store, S3AudioStore)
    return store


async def test_the_store_keeps_streams_and_deletes_objects(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.new_bucket()
    store = store_for(s3_server, tmp_path, bucket, "deploy/audio")
    big = bytes(range(256)) * 4096  # 1 MiB: read back in several chunks, never whole
    await store.put("aud_big.mp3", big)
    await store.put("aud_small.mp3", b"ID3small")
    blob = await store.open("aud_big.mp3")
    assert blob is not None and blob.size == len(big)
    chunks = [chunk async for chunk in blob.chunks]
    assert len(chunks) > 1 and b"".join(chunks) == big
    small = await store.open("aud_small.mp3")
    assert small is not None and b"".join([c async for c in small.chunks]) == b"ID3small"
    assert await store.open("aud_absent.mp3") is None
    assert await store.size("aud_big.mp3") == len(big)
    assert await store.size("aud_absent.mp3") is None
    # The objects live under the prefix, with the MP3 content type.
    head = s3_server.client().head_object(Bucket=bucket, Key="deploy/audio/aud_small.mp3")
    assert head["ContentType"] == "audio/mpeg"
    # Something else in the bucket, outside the prefix, is never listed nor deleted.
    s3_server.client().put_object(Bucket=bucket, Key="other/aud_x.mp3", Body=b"x")
    listed = {k async for keys in store.older_than(time.time() + 60, 1) for k in keys}
    assert listed == {"aud_big.mp3", "aud_small.mp3"}
    assert [k async for k in store.older_than(time.time() - 3600, 10)] == []
    await store.delete_many(["aud_big.mp3", "aud_small.mp3", "aud_absent.mp3"])
    assert {k async for keys in store.older_than(time.time() + 60, 10) for k in keys} == set()
    left = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in left] == ["other/aud_x.mp3"]
    assert await store.ping()


async def test_a_missing_bucket_fails_readiness(s3_server: S3Server, tmp_path: Path) -> None:
    store = store_for(s3_server, tmp_path, "no-such-bucket-here")
    assert not await store.ping()


def test_the_setting_must_name_an_s3_bucket(tmp_path: Path) -> None:
    for bad in ("/var/audio", "s3://", "s3:///prefix", "gs://bucket"):
        with pytest.raises(ValidationError, match="audio_store"):
            Settings(data_dir=tmp_path, audio_store=bad)
    assert S3Location.parse("s3://b/p/q/") == S3Location("b", "p/q")
    assert S3Location.parse("s3://b") == S3Location("b", "")


@pytest.fixture(scope="module")
async def s3_api(
    backend: tuple[str, str | None],
    s3_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Api, str]]:
    """An app on each database whose audio goes to a bucket of its own."""
    name, url = backend
    bucket = s3_server.new_bucket()
    data_dir = tmp_path_factory.mktemp(f"s3-{name}")
    async for api in start_api(name, data_dir, url, **s3_server.settings(bucket)):
        yield api, bucket


async def test_replies_are_spoken_into_the_bucket_and_served_from_it(
    s3_api: tuple[Api, str], s3_server: S3Server
) -> None:
    api, bucket = s3_api
    key = await api.key()
    conversation = await api.conversation(key)
    sent = await api.client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        headers=api.auth(key),
        json={"content": "Hello there!"},
    )
    assert sent.status_code == 200, sent.text
    url = sent.json()["audio"]["url"]
    clip = url.split("/v1/audio/")[1].split("?")[0]
    stored = s3_server.client().get_object(Bucket=bucket, Key=f"audio/{clip}")["Body"].read()
    assert stored[:3] == b"ID3" or stored[0] == 0xFF  # an MP3
    await assert_ranges_served(api.client, url.removeprefix("http://testserver"))
    fetched = await api.client.get(url.removeprefix("http://testserver"))
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "audio/mpeg"
    assert fetched.headers["content-length"] == str(len(stored))
    assert fetched.content == stored
    # Nothing lands in the data directory.
    assert not (api.state.settings.data_dir / "audio").exists()
    ready = await api.client.get("/health/ready")
    assert ready.json()["checks"]["audio_store"] == "ok"
    # Deleting the conversation deletes its audio from the bucket.
    deleted = await api.client.delete(
        f"/v1/conversations/{conversation['id']}", headers=api.auth(key)
    )
    assert deleted.status_code == 200
    assert clip not in await api.stored_audio()
    gone = await api.client.get(url.removeprefix("http://testserver"))
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
