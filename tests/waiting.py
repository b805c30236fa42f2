"""One way for a test to wait for a condition: poll it, and fail with a clear message when
it never comes (a loop that falls through silently hides why a test failed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float, message: str, interval: float = 0.05
) -> T:
    """Poll ``condition`` until it returns something true, and return that; raise an
    ``AssertionError`` saying ``message`` after ``timeout`` seconds. Exceptions from the
    condition count as "not yet" (a server still starting refuses connections)."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except Exception as error:  # e.g. a refused connection while a server starts
            last_error = error
        if time.monotonic() >= deadline:
            suffix = f" (last error: {last_error!r})" if last_error is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {message}{suffix}")
        time.sleep(interval)


async def wait_for(
    condition: Callable[[], Awaitable[T]], within: float, message: str, interval: float = 0.05
) -> T:
    """:func:`wait_until` for a coroutine condition, without blocking the event loop."""
    deadline = time.monotonic() + within
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {message}")
        await asyncio.sleep(interval)
