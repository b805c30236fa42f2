"""Reading request bodies: the 64 KiB limit, the JSON content type, a JSON object."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from avatarium.core.errors import InvalidRequestError, RequestTooLargeError

MAX_BODY_BYTES = 64 * 1024


def _too_large() -> RequestTooLargeError:
    return RequestTooLargeError(
        "The request body is larger than 64 KiB.", details={"limit": MAX_BODY_BYTES}
    )


async def read_body(request: Request) -> bytes:
    """The raw body, refusing more than the limit without reading all of it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def parse_object(raw: bytes, content_type: str | None, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object; an empty body is ``{}`` when ``optional``."""
    if not raw.strip():
        if optional:
            return {}
        raise InvalidRequestError(
            "The request body must be a JSON object.", details={"reason": "empty_body"}
        )
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise InvalidRequestError(
            "Content-Type must be application/json.",
            details={"reason": "unsupported_content_type", "content_type": media_type or None},
        )
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(
            f"The request body is not valid JSON: {exc}.", details={"reason": "invalid_json"}
        ) from exc
    if not isinstance(value, dict):
        raise InvalidRequestError(
            "The request body must be a JSON object.", details={"reason": "not_an_object"}
        )
    return value
