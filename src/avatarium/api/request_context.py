"""Per-request context: request id, timings, the ``X-Request-Id`` / ``Server-Timing``
headers, and the last-resort handler that turns a bug into ``internal_error``."""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from avatarium.api.security_headers import SecurityHeaders
from avatarium.core.errors import InternalError
from avatarium.core.ids import new_id, valid_client_request_id
from avatarium.core.request_id import REQUEST_ID, current_request_id
from avatarium.core.timing import Timings, current_timings

log = logging.getLogger("avatarium.requests")
__all__ = ["RequestContextMiddleware", "current_request_id"]
_request_id = REQUEST_ID


class RequestContextMiddleware:
    """Pure ASGI middleware (no per-request task or body buffering, so it costs microseconds).
    It also adds the security headers, when given them."""

    def __init__(self, app: ASGIApp, security: SecurityHeaders | None = None) -> None:
        self.app = app
        self._security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if valid_client_request_id(candidate):
                    request_id = candidate
                break
        request_id = request_id or new_id("req")
        timings = Timings()
        id_token = _request_id.set(request_id)
        timing_token = current_timings.set(timings)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"server-timing", timings.header().encode()))
                if self._security is not None and scope["type"] == "http":
                    self._security.add(scope["path"], headers)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("unhandled error in request %s", request_id)
            if scope["type"] != "http" or started:
                raise
            body = json.dumps(
                InternalError(
                    "An internal error occurred. Quote the request id when reporting it."
                ).body(request_id)
            ).encode()
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            _request_id.reset(id_token)
            current_timings.reset(timing_token)
