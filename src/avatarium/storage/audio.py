"""Where MP3 bytes live: a small interface, with a local-directory implementation.

The S3-compatible store (:mod:`avatarium.storage.s3`) is the other implementation, for
deployments of several hosts.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

READ_CHUNK_BYTES = 64 * 1024


@dataclass
class AudioBlob:
    """A stored clip being read: its size, then its bytes chunk by chunk."""

    size: int
    chunks: AsyncIterator[bytes]


class AudioStore(Protocol):
    """Stores and serves audio blobs by key."""

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` durably (overwrites)."""
        ...

    async def open(self, key: str, first: int = 0, last: int | None = None) -> AudioBlob | None:
        """The blob under ``key`` to stream (bytes ``first`` to ``last`` inclusive, within its
        size), or ``None`` when absent."""
        ...

    async def size(self, key: str) -> int | None:
        """The size of the blob under ``key``, or ``None`` when absent."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are fine."""
        ...

    async def delete_many(self, keys: Iterable[str]) -> None:
        """Remove every key in ``keys`` (in as few calls as the store allows)."""
        ...

    async def ping(self) -> bool:
        """Whether the store can take a clip now (readiness)."""
        ...

    def older_than(self, moment: float, batch: int) -> AsyncIterator[list[str]]:
        """The keys of blobs last written before ``moment`` (Unix seconds), in batches."""
        ...


INLINE_WRITE_BYTES = 512 * 1024


class LocalAudioStore:
    """Files in a directory.

    A clip's key is new and unique, and nobody learns of it before its database row commits,
    so a write needs no temp-file-and-rename dance: a crash mid-write leaves at worst an
    orphan file that no row points at.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if "/" in key or key.startswith("."):
            raise ValueError(f"bad audio key {key!r}")
        return self.root / key

    async def put(self, key: str, data: bytes) -> None:
        if len(data) <= INLINE_WRITE_BYTES:
            # A reply's MP3 lands in the page cache in tens of microseconds; a round trip to
            # a worker thread costs several times that, on every send.
            self._path(key).write_bytes(data)
        else:
            await asyncio.to_thread(self._path(key).write_bytes, data)

    async def open(self, key: str, first: int = 0, last: int | None = None) -> AudioBlob | None:
        path = self._path(key)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return None
        size = os.fstat(handle.fileno()).st_size
        wanted = (size - 1 if last is None else min(last, size - 1)) - first + 1
        if first:
            handle.seek(first)

        async def chunks() -> AsyncIterator[bytes]:
            left = max(0, wanted)
            try:
                if left <= INLINE_WRITE_BYTES:  # one read from the page cache: no thread hop
                    yield handle.read(left)
                    return
                while left > 0:
                    chunk = await asyncio.to_thread(handle.read, min(READ_CHUNK_BYTES, left))
                    if not chunk:
                        return
                    left -= len(chunk)
                    yield chunk
            finally:
                handle.close()

        return AudioBlob(size=size, chunks=chunks())

    async def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            await self.delete(key)

    async def ping(self) -> bool:
        """The directory is there and writable (a full or read-only disk fails a send)."""
        return self.root.is_dir() and os.access(self.root, os.W_OK | os.X_OK)

    async def older_than(self, moment: float, batch: int) -> AsyncIterator[list[str]]:
        def scan() -> list[str]:
            found = []
            with os.scandir(self.root) as entries:
                for entry in entries:
                    if entry.is_file() and not entry.name.startswith("."):
                        try:
                            if entry.stat().st_mtime < moment:
                                found.append(entry.name)
                        except FileNotFoundError:  # deleted meanwhile
                            continue
            return found

        keys = await asyncio.to_thread(scan)
        for start in range(0, len(keys), batch):
            yield keys[start : start + batch]
