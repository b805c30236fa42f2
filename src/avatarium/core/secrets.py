"""The server secret and the keyed hashes and signatures derived from it.

Each use derives its own sub-key (HMAC of a label), so an API-key hash can never be replayed
as an audio signature and vice versa.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

SECRET_FILE = "secret_key"


def load_or_create_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret, else the one generated into the data dir on first run."""
    if configured:
        return configured.encode("utf-8")
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip().encode("utf-8")
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # Create with 0600 from the start: the secret is never readable by other users.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value.encode("utf-8")


class Sealer:
    """Authenticated encryption (Fernet: AES-128-CBC + HMAC-SHA256) of secrets at rest,
    such as bring-your-own provider keys, under a key derived from the server secret."""

    def __init__(self, secret: bytes) -> None:
        from cryptography.fernet import Fernet

        derived = hmac.new(secret, b"avatarium/byok-encryption", hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str:
        return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")


class Signer:
    """Keyed hashes and URL signatures under one server secret."""

    def __init__(self, secret: bytes) -> None:
        self._api_key_key = hmac.new(secret, b"avatarium/api-key-hash", hashlib.sha256).digest()
        self._url_key = hmac.new(secret, b"avatarium/signed-url", hashlib.sha256).digest()
        self._token_key = hmac.new(secret, b"avatarium/client-token", hashlib.sha256).digest()

    def hash_api_key(self, key: str) -> str:
        """HMAC-SHA256 of an API key, hex; what the database stores."""
        return hmac.new(self._api_key_key, key.encode("utf-8"), hashlib.sha256).hexdigest()

    def sign_url(self, resource: str, expires: int) -> str:
        """A URL-safe signature of ``resource`` valid until ``expires`` (Unix seconds)."""
        mac = hmac.new(self._url_key, f"{resource}:{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode("ascii").rstrip("=")

    def verify_url(self, resource: str, expires: int, signature: str) -> bool:
        """Constant-time check of a signature made by :meth:`sign_url`."""
        return _same(self.sign_url(resource, expires), signature)

    def sign_token(self, payload: str) -> str:
        """A URL-safe signature of a client token's payload."""
        mac = hmac.new(self._token_key, payload.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode("ascii").rstrip("=")

    def verify_token(self, payload: str, signature: str) -> bool:
        """Constant-time check of a signature made by :meth:`sign_token`."""
        return _same(self.sign_token(payload), signature)


def _same(expected: str, given: str) -> bool:
    """Constant-time comparison that any text may reach: ``compare_digest`` raises on a
    non-ASCII ``str``, and ours are ASCII, so anything else simply does not match."""
    if not given.isascii():
        return False
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii"))
