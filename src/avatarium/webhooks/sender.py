"""One HTTP attempt at a webhook endpoint: a POST with a timeout, no redirects followed,
and every address checked (see :mod:`avatarium.webhooks.targets`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from avatarium.webhooks.targets import (
    GuardedResolver,
    TargetRefusedError,
    check_address,
    literal_address,
)

USER_AGENT = "Avatarium-Webhooks/1"
ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt came to: the status (None when no answer came) and why it failed."""

    status_code: int | None
    duration_ms: int
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.error is None


class WebhookSender:
    """Posts signed event bodies; one pooled client per process."""

    def __init__(self, *, timeout_s: float, allow_private: bool) -> None:
        self.timeout_s = timeout_s
        self.allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                # Every new connection resolves again (and is checked again): no DNS cache.
                resolver=None if self.allow_private else GuardedResolver(),
                use_dns_cache=False,
                limit=256,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                trust_env=False,  # never through a proxy from the environment
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        started = time.perf_counter()

        def result(status: int | None, error: str | None) -> AttemptResult:
            elapsed = round((time.perf_counter() - started) * 1000)
            return AttemptResult(status, elapsed, error[:ERROR_CHARS] if error else None)

        try:
            if not self.allow_private:
                # A literal address never reaches the resolver: check it here.
                host = urlsplit(url).hostname or ""
                literal = literal_address(host)
                if literal is not None:
                    check_address(host, str(literal))
            async with self._client().post(
                url,
                data=body,
                headers={"Content-Type": "application/json", **headers},
                allow_redirects=False,
            ) as response:
                await response.content.read(4_096)  # a little of the answer; the rest unread
                status = response.status
        except TargetRefusedError as refused:  # from the check above or from the resolver
            return result(None, f"refused: {refused}")
        except aiohttp.ClientConnectorError as error:
            return result(None, f"connection failed: {error.os_error or error}")
        except TimeoutError:
            return result(None, f"timed out after {self.timeout_s:g} s")
        except (aiohttp.ClientError, OSError) as error:
            return result(None, f"{type(error).__name__}: {error}")
        except asyncio.CancelledError:
            raise
        if 200 <= status < 300:
            return result(status, None)
        if 300 <= status < 400:
            return result(status, f"answered {status}; redirects are not followed")
        return result(status, f"answered {status}")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
