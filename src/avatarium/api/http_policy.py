"""What every HTTP response says to browsers: CORS for the configured origins, and the
security headers (nosniff, no caching of API answers, the web page's Content-Security-Policy).

CORS comes from Starlette's own middleware (well kept, spec-checked); only its refusal of a
preflight is rendered in our error envelope instead of a plain-text 400. Origins that are
not listed get no CORS headers at all, so the browser keeps them out.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def page_policy(settings: Settings) -> str:
    """The web page's Content-Security-Policy: its own scripts only (no inline script, no
    eval), speech from this server (or its public base URL), and the configured framers.
    Inline styles are allowed: the avatars' SVGs, which the page inlines, carry their mouth
    shapes as a ``<style>`` of their own so that they work anywhere as ``model_url``."""
    audio = _origin(settings.public_base_url)
    extra = f" {audio}" if audio else ""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data: blob:; media-src 'self' blob: data:{extra}; "
        f"connect-src 'self'{extra}; object-src 'none'; base-uri 'none'; "
        f"form-action 'self'; frame-ancestors {settings.frame_ancestors}"
    )


class SecurityHeadersMiddleware:
    """Adds the security headers (pure ASGI: a few microseconds a response)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self._common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        self._page = [(b"content-security-policy", page_policy(settings).encode("latin-1"))]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        is_page = path == "/" or path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(self._common)
                if is_page:
                    headers.extend(self._page)
                elif not any(name == b"cache-control" for name, _ in headers):
                    # API answers hold account data: no shared or browser cache keeps them.
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
