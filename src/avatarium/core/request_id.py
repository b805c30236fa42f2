"""The id of the request being served, in a context variable: set by the request
middleware, read by error bodies and by every log line written while the request runs."""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("avatarium_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served, if any."""
    return REQUEST_ID.get()
