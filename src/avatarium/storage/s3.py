"""Audio in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, Ceph, R2, ...).

Every host of a deployment reads and writes the same bucket, so an audio URL signed by one
host is served by any other. The client is boto3's, the reference implementation of the S3
protocol (signing, retries, pagination); its calls block, so each runs in a worker thread,
and a download is streamed chunk by chunk rather than read whole.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from avatarium.storage.audio import READ_CHUNK_BYTES, AudioBlob

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys per call


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix``: the bucket and the key prefix (no slashes at either end)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """Read ``s3://bucket[/prefix]``; ``ValueError`` names what is wrong."""
        if not url.startswith("s3://"):
            raise ValueError("must look like s3://bucket/prefix")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError("names no bucket (s3://bucket/prefix)")
        return cls(bucket, prefix.strip("/"))

    def key(self, name: str) -> str:
        """The object key of a clip named ``name``."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def name(self, key: str) -> str | None:
        """A clip's name from an object key under the prefix; ``None`` for anything else."""
        head = f"{self.prefix}/" if self.prefix else ""
        if not key.startswith(head):
            return None
        name = key[len(head) :]
        return None if "/" in name or not name else name


@dataclass(frozen=True)
class S3Options:
    """How to reach the store. Unset credentials fall back to boto3's usual chain
    (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile, an instance role)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    timeout_s: float = 10.0
    max_connections: int = 32


def make_client(options: S3Options) -> S3Client:
    """A boto3 S3 client for ``options`` (thread-safe: one per process is enough)."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=options.timeout_s,
        read_timeout=options.timeout_s,
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=options.max_connections,
        s3={"addressing_style": options.addressing_style},
    )
    return boto3.client(
        "s3",
        endpoint_url=options.endpoint_url or None,
        region_name=options.region or None,
        aws_access_key_id=options.access_key_id or None,
        aws_secret_access_key=options.secret_access_key or None,
        config=config,
    )


def _missing(error: Exception) -> bool:
    """Whether a botocore error means "no such object"."""
    response: Any = getattr(error, "response", None)
    code = str((response or {}).get("Error", {}).get("Code", ""))
    return code in {"NoSuchKey", "404", "NotFound"}


class S3AudioStore:
    """Clips as objects under ``s3://bucket/prefix/``."""

    def __init__(self, location: S3Location, client: S3Client) -> None:
        self.location = location
        self._client = client

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(
            self._client.put_object,
            Bucket=self.location.bucket,
            Key=self.location.key(key),
            Body=data,
            ContentType="audio/mpeg",
        )

    async def open(self, key: str, first: int = 0, last: int | None = None) -> AudioBlob | None:
        from botocore.exceptions import ClientError

        get = functools.partial(
            self._client.get_object, Bucket=self.location.bucket, Key=self.location.key(key)
        )
        if first or last is not None:  # a part ("bytes=0-" of an empty object is a 416)
            get = functools.partial(get, Range=f"bytes={first}-{'' if last is None else last}")
        try:
            response = await asyncio.to_thread(get)
        except ClientError as error:
            if _missing(error):
                return None
            raise
        body = response["Body"]
        # A ranged read answers "bytes first-last/size": the size is the whole object's.
        content_range = str(response.get("ContentRange") or "")
        size = (
            int(content_range.rsplit("/", 1)[1])
            if "/" in content_range
            else int(response["ContentLength"])
        )

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await asyncio.to_thread(body.read, READ_CHUNK_BYTES):
                    yield chunk
            finally:
                body.close()  # a listener that hung up must not pin a pooled connection

        return AudioBlob(size=size, chunks=chunks())

    async def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = await asyncio.to_thread(
                self._client.head_object, Bucket=self.location.bucket, Key=self.location.key(key)
            )
        except ClientError as error:
            if _missing(error):
                return None
            raise
        return int(head["ContentLength"])

    async def delete(self, key: str) -> None:
        await self.delete_many([key])

    async def delete_many(self, keys: Iterable[str]) -> None:
        names = [self.location.key(k) for k in keys]
        for start in range(0, len(names), DELETE_BATCH):
            batch = names[start : start + DELETE_BATCH]
            response = await asyncio.to_thread(
                self._client.delete_objects,
                Bucket=self.location.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            errors = response.get("Errors") or []
            if errors:  # deleting an absent key is not an error in S3; anything else is
                first = errors[0]
                raise OSError(
                    f"S3 refused to delete {len(errors)} object(s): "
                    f"{first.get('Code')} {first.get('Message')}"
                )

    async def ping(self) -> bool:
        """The bucket answers to our credentials (readiness)."""
        try:
            await asyncio.to_thread(self._client.head_bucket, Bucket=self.location.bucket)
        except Exception:
            return False
        return True

    async def older_than(self, moment: float, batch: int) -> AsyncIterator[list[str]]:
        head = f"{self.location.prefix}/" if self.location.prefix else ""
        paginator = self._client.get_paginator("list_objects_v2")
        pages = iter(
            paginator.paginate(
                Bucket=self.location.bucket, Prefix=head, PaginationConfig={"PageSize": batch}
            )
        )
        while True:
            page = await asyncio.to_thread(next, pages, None)
            if page is None:
                return
            found = []
            for item in page.get("Contents", []):
                name = self.location.name(item["Key"])
                if name is not None and item["LastModified"].timestamp() < moment:
                    found.append(name)
            if found:
                yield found
