"""The public base URL that absolute links (audio, avatar models) are built on."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from avatarium.api.state import state_of


def base_url(connection: HTTPConnection) -> str:
    """``AVATARIUM_PUBLIC_BASE_URL``, else the scheme and host the client used."""
    configured = state_of(connection).settings.public_base_url
    if configured:
        return configured.rstrip("/")
    # A WebSocket's links are still fetched over HTTP.
    scheme = {"ws": "http", "wss": "https"}.get(connection.url.scheme, connection.url.scheme)
    return f"{scheme}://{connection.url.netloc}"
