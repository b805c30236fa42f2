"""The security headers of every HTTP response: nosniff, no referrer, no caching of API
answers, and the web page's Content-Security-Policy."""

from __future__ import annotations

from urllib.parse import urlsplit

from avatarium.core.settings import Settings


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


class SecurityHeaders:
    """The security headers of a response, by path. Applied by the request-context
    middleware as it adds the request id, so a response passes one wrapper, not two."""

    def __init__(self, settings: Settings) -> None:
        self._common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        self._page = [(b"content-security-policy", page_policy(settings).encode("latin-1"))]

    def add(self, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        """Append the headers for a response to ``path`` to its ``headers``."""
        headers.extend(self._common)
        if path in ("/", "/docs") or path.startswith(("/static/", "/embed/")):
            headers.extend(self._page)
        elif not any(name == b"cache-control" for name, _ in headers):
            # API answers hold account data: no shared or browser cache keeps them.
            headers.append((b"cache-control", b"no-store"))
