"""Renders the one error tree: as a JSON response here; SSE and WebSocket encoders reuse
:meth:`AvatariumError.body`."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from avatarium.api.request_context import current_request_id
from avatarium.core.errors import (
    AvatariumError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
)
from avatarium.core.wire import WireJSONResponse as JSONResponse

log = logging.getLogger("avatarium.errors")


def error_response(error: AvatariumError) -> JSONResponse:
    """The documented envelope with the error's status and headers."""
    return JSONResponse(
        error.body(current_request_id()), status_code=error.status_code, headers=error.headers
    )


async def handle_avatarium_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AvatariumError)
    return error_response(exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's routing failures, in our envelope."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFoundError(f"No route for {request.url.path}."))
    if exc.status_code == 405:
        allow = exc.headers.get("Allow", "") if exc.headers else ""
        error = MethodNotAllowedError(
            f"{request.method} is not allowed on {request.url.path}.",
            details={"allowed": [m.strip() for m in allow.split(",") if m.strip()]},
            headers={"Allow": allow} if allow else None,
        )
        return error_response(error)
    return error_response(InvalidRequestError(str(exc.detail)))
