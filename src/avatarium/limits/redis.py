"""Redis limiter state: every check-and-update is one Lua script, so the limits hold
exactly across worker processes and hosts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avatarium.limits.backend import WindowResult

SCRIPTS = Path(__file__).with_name("scripts")


class RedisBackend:
    """Limits in Redis (``AVATARIUM_REDIS_URL``)."""

    def __init__(self, url: str, prefix: str = "avatarium:") -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix
        self._lease = self._redis.register_script((SCRIPTS / "lease.lua").read_text())
        self._renew = self._redis.register_script((SCRIPTS / "renew.lua").read_text())
        self._admit = self._redis.register_script((SCRIPTS / "admit.lua").read_text())

    async def admit(
        self,
        slots_key: str,
        window_key: str,
        concurrent: int,
        lease: str,
        ttl_s: float,
        window_s: float,
        limit: int,
    ) -> tuple[int, WindowResult]:
        status, count, reset, now = await self._admit(
            keys=[self._prefix + slots_key, self._prefix + window_key],
            args=[concurrent, lease, int(ttl_s * 1000), window_s, limit],
        )
        return int(status), WindowResult(int(status) == 1, int(count), float(reset), float(now))

    async def acquire(self, key: str, limit: int, lease: str, ttl_s: float) -> bool:
        granted = await self._lease(
            keys=[self._prefix + key], args=[limit, lease, int(ttl_s * 1000)]
        )
        return bool(granted)

    async def renew(self, key: str, leases: list[str], ttl_s: float) -> None:
        if leases:
            await self._renew(keys=[self._prefix + key], args=[int(ttl_s * 1000), *leases])

    async def release(self, key: str, lease: str) -> None:
        await self._redis.zrem(self._prefix + key, lease)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()
