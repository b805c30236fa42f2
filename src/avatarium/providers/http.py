"""Outbound HTTP for cloud providers: one client, timeouts, retries like the official SDKs,
and vendor failures turned into provider-neutral ``ProviderError``s.

Retried: connection errors, timeouts, 408, 409, 429 and 5xx (529 included), with exponential
backoff and jitter, honouring ``Retry-After`` up to a cap. Never retried: anything after the
first byte of a streamed body was handed on, and 4xx that a retry cannot fix.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.transport import (
    OutboundRequest,
    TransportError,
    TransportTimeoutError,
    VendorClient,
    VendorResponse,
)

RETRYABLE_STATUS = {408, 409, 429}
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a provider call may be retried."""

    max_retries: int = 2
    timeout_s: float = 30.0
    retry_after_cap_s: float = 20.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap_s)
        base = min(INITIAL_BACKOFF_S * 2 ** (attempt - 1), MAX_BACKOFF_S)
        return float(base * (1 - 0.25 * random.random()))  # jitter spreads many clients


def retry_after_seconds(response: VendorResponse) -> float | None:
    """``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), if present."""
    millis = response.headers.get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def category_for_status(status: int) -> FailureCategory:
    if status in (401, 403):
        return FailureCategory.AUTH_FAILED
    if status == 429:
        return FailureCategory.RATE_LIMITED
    if status == 408:
        return FailureCategory.TIMEOUT
    if status == 409 or status >= 500:
        return FailureCategory.UNAVAILABLE
    return FailureCategory.BAD_RESPONSE


def vendor_message(body: bytes) -> str:
    """The vendor's own error message, if its body says one (never the request)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:200].decode("utf-8", "replace")
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data))
        if isinstance(error, dict):
            return str(error.get("message") or error.get("status") or error)[:300]
        return str(error)[:300]
    return str(data)[:300]


Classifier = Callable[[int, bytes], FailureCategory | None]


def status_failure(
    provider: str, response: VendorResponse, body: bytes, classify: Classifier | None = None
) -> ProviderError:
    category = classify(response.status_code, body) if classify else None
    return ProviderError(
        category or category_for_status(response.status_code),
        provider,
        f"HTTP {response.status_code}: {vendor_message(body)}",
        retry_after=retry_after_seconds(response),
    )


def is_retryable(error: ProviderError, status: int | None) -> bool:
    if status is not None:
        return status in RETRYABLE_STATUS or status >= 500
    return error.category.retryable


def new_client(policy: RetryPolicy) -> VendorClient:
    """One pooled client per provider; the timeout covers connecting and each read."""
    return VendorClient(policy.timeout_s)


@asynccontextmanager
async def open_response(
    client: VendorClient,
    provider: str,
    policy: RetryPolicy,
    build: Callable[[], OutboundRequest],
    classify: Classifier | None = None,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> AsyncIterator[VendorResponse]:
    """A successful (2xx) streaming response, retried per ``policy`` until then.

    Once yielded, no retry happens: the caller owns the body and its failures.
    """
    attempt = 0
    while True:
        status: int | None = None
        try:
            response = await client.send(build())
        except TransportTimeoutError as exc:
            error = ProviderError(FailureCategory.TIMEOUT, provider, f"timed out: {exc}")
        except TransportError as exc:
            error = ProviderError(FailureCategory.UNAVAILABLE, provider, f"connection: {exc}")
        else:
            if response.is_success:
                try:
                    yield response
                finally:
                    await response.aclose()
                return
            status = response.status_code
            try:
                body = await response.aread()
            except TransportError:
                body = b""
            finally:
                await response.aclose()
            error = status_failure(provider, response, body, classify)
        attempt += 1
        if attempt > policy.max_retries or not is_retryable(error, status):
            error.attempts = attempt
            raise error
        await sleep(policy.delay(attempt, error.retry_after))


async def read_json(response: VendorResponse, provider: str) -> Any:
    """A whole JSON body, with read failures and malformed bodies as ProviderErrors."""
    try:
        body = await response.aread()
    except TransportTimeoutError as exc:
        raise ProviderError(FailureCategory.TIMEOUT, provider, f"read timed out: {exc}") from exc
    except TransportError as exc:
        raise ProviderError(
            FailureCategory.UNAVAILABLE, provider, f"connection lost: {exc}"
        ) from exc
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProviderError(FailureCategory.BAD_RESPONSE, provider, "malformed JSON body") from exc


async def sse_events(response: VendorResponse, provider: str) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a Server-Sent Events body, per the WHATWG parsing rules.

    A 2xx answer that is not an event stream is a ``bad_response``.
    """
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "text/event-stream":
        raise ProviderError(
            FailureCategory.BAD_RESPONSE,
            provider,
            f"expected an event stream, got {media_type or 'no content type'}",
        )
    event: str = "message"
    data: list[str] = []
    try:
        async for line in response.aiter_lines():
            if line == "":
                if data:
                    yield event, "\n".join(data)
                event, data = "message", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    except TransportTimeoutError as exc:
        raise ProviderError(FailureCategory.TIMEOUT, provider, f"stream stalled: {exc}") from exc
    except TransportError as exc:
        raise ProviderError(FailureCategory.UNAVAILABLE, provider, f"stream cut: {exc}") from exc
    if data:
        yield event, "\n".join(data)


def parse_json(data: str, provider: str) -> Any:
    """One streamed event's JSON (orjson: a reply's every event passes through here)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProviderError(
            FailureCategory.BAD_RESPONSE, provider, "malformed streamed event"
        ) from exc
