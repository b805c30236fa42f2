"""Webhook secrets and the two signatures every delivery carries (SPEC section 10).

Standard Webhooks: ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``
keyed with the base64-decoded part of the secret after ``whsec_``. Avatarium:
``X-Avatarium-Signature: sha256=<hex HMAC-SHA256 of the body>`` keyed with the whole secret
string. Signing is these few lines of the standard library; the tests verify the result with
the Standard Webhooks reference library (``standardwebhooks``), which the server does not need.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
SECRET_BYTES = 24
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


def new_secret() -> str:
    """A fresh ``whsec_`` secret: 24 random bytes, base64."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes | None:
    """The key bytes of a ``whsec_`` secret, or None when it is not one (24..64 bytes)."""
    if not secret.startswith(PREFIX):
        return None
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES else None


def signature_headers(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers that let a receiver check a delivery came from us, unchanged."""
    key = secret_key(secret)
    if key is None:  # secrets are checked when they are set; this is a stored one
        raise ValueError("not a whsec_ secret")
    signed = f"{event_id}.{timestamp}.".encode() + body
    standard = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
    ours = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{standard}",
        "X-Avatarium-Signature": f"sha256={ours}",
    }
