"""CORS for the configured origins (``AVATARIUM_CORS_ORIGINS``).

CORS comes from Starlette's own middleware (well kept, spec-checked); only its refusal of a
preflight is rendered in our error envelope instead of a plain-text 400. Origins that are
not listed get no CORS headers at all, so the browser keeps them out.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from avatarium.api.errors import error_response
from avatarium.core.errors import InvalidRequestError
from avatarium.core.settings import Settings

# What a page on another origin may send, and read back.
CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "X-Request-Id",
    "Last-Event-ID",
]
CORS_EXPOSED_HEADERS = [
    "X-Request-Id",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
    "Idempotent-Replayed",
    "Server-Timing",
    "X-TTS-Characters",
    "X-Audio-Duration-Ms",
]


class OurCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with refused preflights in the documented error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        return error_response(
            InvalidRequestError(
                "This cross-origin request is not allowed: the origin, method or headers are "
                "not in the server's CORS settings (AVATARIUM_CORS_ORIGINS).",
                details={"reason": "cors_not_allowed"},
            )
        )


def cors_middleware(settings: Settings) -> list[Middleware]:
    """CORS for the configured origins; nothing at all when there are none."""
    origins = settings.cors_origin_list()
    if not origins:
        return []
    return [
        Middleware(
            OurCORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            allow_credentials=False,  # bearer keys and tokens, never cookies
            max_age=600,
        )
    ]
