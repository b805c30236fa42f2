"""Prefixed random identifiers (``conv_…``, ``msg_…``): 22 base62 characters of entropy."""

from __future__ import annotations

import re
import secrets
import string

BASE62 = string.digits + string.ascii_letters
ID_BODY_LENGTH = 22


def random_base62(length: int) -> str:
    """A cryptographically random base62 string."""
    return "".join(secrets.choice(BASE62) for _ in range(length))


def new_id(prefix: str) -> str:
    """A new identifier such as ``conv_3fK9…`` (prefix without the underscore): 128 random
    bits, written as 22 base62 characters (one system call, not one per character)."""
    value = int.from_bytes(secrets.token_bytes(16), "big")
    digits = []
    for _ in range(ID_BODY_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return f"{prefix}_{''.join(digits)}"


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def valid_client_request_id(value: str) -> bool:
    """Whether a client-sent ``X-Request-Id`` may be echoed back."""
    return bool(_REQUEST_ID.match(value))
