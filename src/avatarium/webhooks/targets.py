"""Where a webhook may be sent: public addresses only (SSRF protection), checked when an
endpoint is registered and again on the connection of every delivery.

The delivery check lives in the HTTP client's resolver, so the address that was checked is
the address that is connected to: a name that resolves to a public address at registration
and to 127.0.0.1 later (DNS rebinding) is refused at delivery. Literal IP addresses never
reach a resolver, so they are checked before the request. Redirects are never followed.
``AVATARIUM_WEBHOOK_ALLOW_PRIVATE=true`` turns the checks off (a receiver on the same host
or network, as in development).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import SplitResult, urlsplit

from aiohttp import ThreadedResolver
from aiohttp.abc import AbstractResolver

from avatarium.core.errors import InvalidParameterError

MAX_URL = 2_048
RESOLVE_TIMEOUT_S = 5.0
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefusedError(Exception):
    """The target is an address webhooks may not be sent to."""


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not receive webhooks, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:  # 169.254.169.254, the cloud metadata service, is one
        return "a link-local address (such as a cloud metadata service)"
    if address.is_private:
        return "a private address"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "not a unicast address"
    if not address.is_global:  # shared address space (100.64/10) and the like
        return "not a public address"
    return None


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is written as one (``[::1]`` included)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_address(host: str, address: str) -> None:
    """Raise :class:`TargetRefusedError` when ``address`` (what ``host`` resolved to) is
    not a public one."""
    parsed = literal_address(address.split("%", 1)[0])
    reason = "not an IP address" if parsed is None else refusal(parsed)
    if reason is not None:
        shown = host if host == address else f"{host} ({address})"
        raise TargetRefusedError(f"{shown} is {reason}; webhooks go to public addresses only")


def parse_url(url: str) -> SplitResult:
    """The URL's parts, or 400 ``invalid_parameter`` (field ``url``) for a malformed one."""
    if len(url) > MAX_URL:
        raise InvalidParameterError(
            "url", "too_long", f"url is at most {MAX_URL} characters.", max_length=MAX_URL
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise InvalidParameterError("url", "invalid_type", "url is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameterError(
            "url", "invalid_type", "url must be an absolute http:// or https:// URL."
        )
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL end up in logs and in the list of endpoints.
        raise InvalidParameterError(
            "url", "not_allowed", "url must not hold credentials; verify the signature instead."
        )
    return parts


async def check_target(url: str, *, allow_private: bool) -> None:
    """Registration: the URL is well formed and every address its host resolves to is a
    public one; else 400 ``invalid_parameter``, reason ``not_allowed``."""
    parts = parse_url(url)
    if allow_private:
        return
    host = parts.hostname or ""
    literal = literal_address(host)
    try:
        if literal is not None:
            check_address(host, str(literal))
            return
        port = parts.port or (443 if parts.scheme == "https" else 80)
        for address in await resolve(host, port):
            check_address(host, address)
    except TargetRefusedError as refused:
        raise InvalidParameterError("url", "not_allowed", f"url is refused: {refused}.") from None


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to; refused when it resolves to none."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
        )
    except (OSError, TimeoutError):
        raise TargetRefusedError(f"{host} does not resolve") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise TargetRefusedError(f"{host} does not resolve")
    return addresses


class GuardedResolver(AbstractResolver):
    """The delivery client's resolver: refuses the whole name if any address it resolves
    to is not public (a name that mixes public and private addresses is refused too)."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[Any]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_address(host, str(result["host"]))
        return list(results)

    async def close(self) -> None:
        await self._inner.close()
