"""Reading request bodies: the 64 KiB limit, the JSON content type, a JSON object.

Hostile JSON must end in a 400, never a 500: the standard parser raises ``RecursionError``
on deep nesting and ``ValueError`` on integers past Python's digit limit, and it accepts
lone UTF-16 surrogates (``"\\ud800"``) and NUL characters, which neither the JSON encoder
of our responses nor PostgreSQL's text columns can hold.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from avatarium.core.errors import InvalidParameterError, InvalidRequestError, RequestTooLargeError

MAX_BODY_BYTES = 64 * 1024


def too_large(limit: int = MAX_BODY_BYTES, what: str = "The request body") -> RequestTooLargeError:
    size = f"{limit // 1024} KiB" if limit < 1024 * 1024 else f"{limit // (1024 * 1024)} MB"
    return RequestTooLargeError(f"{what} is larger than {size}.", details={"limit": limit})


def is_multipart(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "multipart/form-data"


async def read_body(request: Request, upload_limit: int | None = None) -> bytes:
    """The raw body, refusing more than the limit without reading all of it. Endpoints
    that take uploads (``upload_limit``: the largest file) accept a multipart body that
    large, plus room for its other fields."""
    limit, reported = MAX_BODY_BYTES, MAX_BODY_BYTES
    if upload_limit is not None and is_multipart(request.headers.get("content-type")):
        limit, reported = upload_limit + MAX_BODY_BYTES, upload_limit
    declared = request.headers.get("content-length")
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and (len(declared) > 12 or int(declared) > limit)
    ):
        raise too_large(reported)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(reported)
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(raw: bytes | str, what: str = "The request body") -> Any:
    """Parse JSON, turning every parser failure into 400 ``invalid_json`` and every string
    that cannot be stored into 400 ``invalid_parameter`` naming its field."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise InvalidRequestError(
            f"{what} is nested too deeply.", details={"reason": "invalid_json"}
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise InvalidRequestError(
            f"{what} is not valid JSON: {exc}.", details={"reason": "invalid_json"}
        ) from None
    # JSON admits no raw control characters, so a NUL or a surrogate can only come from a
    # \u escape, or in bytes from a surrogate's own UTF-8 form (the parser decodes bytes
    # with surrogatepass): most bodies skip the walk.
    suspect = (b"\\u" in raw or b"\xed" in raw) if isinstance(raw, bytes) else "\\u" in raw
    if suspect:
        reject_unstorable(value, "")
    return value


def _unstorable(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def reject_unstorable(value: Any, path: str) -> None:
    """400 ``invalid_parameter`` for the first string, key or value, holding a lone
    surrogate or a NUL character: it is not valid Unicode text, so the reason is
    ``invalid_type`` (SPEC's list of reasons has no closer one)."""
    if isinstance(value, str):
        if _unstorable(value):
            raise InvalidParameterError(
                path or "body",
                "invalid_type",
                f"{path or 'The body'} contains a NUL character or a lone UTF-16 surrogate.",
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            field = f"{path}.{key}" if path else key
            if _unstorable(key):
                safe = key.encode("utf-8", "replace").decode("utf-8").replace("\x00", "?")
                raise InvalidParameterError(
                    f"{path}.{safe}" if path else safe,
                    "invalid_type",
                    "A field name contains a NUL character or a lone UTF-16 surrogate.",
                )
            reject_unstorable(item, field)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            reject_unstorable(item, f"{path}[{index}]")


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
    value = decode_json(raw)
    if not isinstance(value, dict):
        raise InvalidRequestError(
            "The request body must be a JSON object.", details={"reason": "not_an_object"}
        )
    return value
