"""The HTTP client the cloud adapters talk to their vendors with: aiohttp underneath, a
small surface above (build a request, send it, read the response as bytes or lines).

Why aiohttp: a streamed chat completion from a loopback upstream costs about 0.26 ms of CPU
through aiohttp against 0.69 ms through httpx on this machine (`docs/performance.md`), and
the vendor call runs in every send. The session is created on first use, inside the
running event loop (aiohttp binds it to that loop), and never follows redirects.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

# SSE lines end in CRLF, LF or a lone CR (WHATWG); a CR at the end of a chunk may be the
# first half of a CRLF, so it waits for the next chunk.
_LINE_END = re.compile(r"\r\n|\r(?!$)|\n")


class TransportError(Exception):
    """The connection failed, broke or was refused."""


class TransportTimeoutError(TransportError):
    """Connecting, or waiting for the next bytes, took longer than the timeout."""


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """One request to a vendor, ready to send (and to send again on a retry)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    params: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class FormPart:
    """One part of a ``multipart/form-data`` body: a field, or a file when ``filename``."""

    name: str
    value: bytes | str
    filename: str | None = None
    content_type: str | None = None


def multipart_form(parts: Sequence[FormPart]) -> tuple[bytes, str]:
    """An RFC 7578 body and its Content-Type, built once so a retry resends the same bytes."""
    boundary = f"avatarium-{secrets.token_hex(16)}"
    out = bytearray()
    for part in parts:
        name = part.name.replace('"', "%22")
        disposition = f'form-data; name="{name}"'
        if part.filename is not None:
            disposition += f'; filename="{part.filename.replace(chr(34), "%22")}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if part.content_type is not None:
            out += f"Content-Type: {part.content_type}\r\n".encode()
        out += b"\r\n"
        out += part.value.encode("utf-8") if isinstance(part.value, str) else part.value
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


class VendorResponse:
    """A response whose body is read on demand: whole, or line by line."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status_code = response.status
        self.headers = response.headers

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    async def aread(self) -> bytes:
        try:
            return await self._response.read()
        except TimeoutError as exc:
            raise TransportTimeoutError(repr(exc)) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(repr(exc)) from exc

    async def aiter_lines(self) -> AsyncIterator[str]:
        """The body's lines without their line ends, decoded as UTF-8."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        try:
            async for chunk in self._response.content.iter_any():
                pending += decoder.decode(chunk)
                start = 0
                for end in _LINE_END.finditer(pending):
                    yield pending[start : end.start()]
                    start = end.end()
                pending = pending[start:]
        except TimeoutError as exc:
            raise TransportTimeoutError(repr(exc)) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(repr(exc)) from exc
        pending += decoder.decode(b"", final=True)
        if pending:  # the last line, unterminated or ended by a lone CR
            yield pending.removesuffix("\r")

    async def aclose(self) -> None:
        self._response.release()


class VendorClient:
    """One connection pool per provider; ``timeout_s`` bounds connecting and every wait
    for more bytes (not the whole response, which a long stream may exceed)."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def build_request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        form: Sequence[FormPart] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> OutboundRequest:
        all_headers = dict(headers or {})
        body = None
        if json is not None:
            body = orjson.dumps(json)
            all_headers["Content-Type"] = "application/json"
        elif form is not None:
            body, all_headers["Content-Type"] = multipart_form(form)
        return OutboundRequest(method, url, all_headers, body, params)

    def _pool(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._loop = loop
        return self._session

    async def send(self, request: OutboundRequest) -> VendorResponse:
        """The response once its head has arrived; the caller reads and closes it."""
        try:
            response = await self._pool().request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                params=request.params,
                allow_redirects=False,
            )
        except TimeoutError as exc:
            raise TransportTimeoutError(repr(exc)) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(repr(exc)) from exc
        return VendorResponse(response)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
