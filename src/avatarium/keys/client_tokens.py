"""Client tokens: short-lived credentials a web page may hold instead of the secret key.

A token is ``ct_<payload>.<signature>``; the payload names the key that issued it, the one
conversation it is good for and when it expires, and the signature is an HMAC under a
sub-key of the server secret. Nothing is stored: every use checks the signature and expiry,
then reads the issuing key, so revoking that key (or changing its account's limits) applies
to its tokens on the next request, on every worker.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

from avatarium.core.clock import Clock
from avatarium.core.errors import ExpiredApiKeyError, InvalidApiKeyError
from avatarium.core.secrets import Signer
from avatarium.keys.service import KeyService, Principal

PREFIX = "ct_"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    conversation_id: str
    expires_at: datetime


def _b64(data: str) -> str:
    return base64.urlsafe_b64encode(data.encode("utf-8")).decode("ascii").rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")


class ClientTokenService:
    """Issues and checks client tokens."""

    def __init__(self, keys: KeyService, signer: Signer, clock: Clock) -> None:
        self._keys = keys
        self._signer = signer
        self._clock = clock

    def issue(self, principal: Principal, conversation_id: str, ttl_s: int) -> IssuedToken:
        """A token for ``conversation_id`` on behalf of ``principal``'s key."""
        # Whole seconds: the expiry is exact in the payload and in ``expires_at``.
        expires = int(self._clock.now().timestamp()) + ttl_s
        payload = _b64(f"{principal.key_id}:{conversation_id}:{expires}")
        token = f"{PREFIX}{payload}.{self._signer.sign_token(payload)}"
        return IssuedToken(token, conversation_id, datetime.fromtimestamp(expires, UTC))

    async def authenticate(self, token: str) -> Principal:
        """The issuing key's principal, restricted to the token's conversation."""
        payload, _, signature = token.removeprefix(PREFIX).partition(".")
        if not payload or not signature or not self._signer.verify_token(payload, signature):
            raise InvalidApiKeyError("The client token is malformed or was not issued here.")
        try:
            key_id, conversation_id, expires = _unb64(payload).split(":")
            expires_at = int(expires)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidApiKeyError("The client token is malformed.") from None
        if expires_at <= self._clock.now().timestamp():
            raise ExpiredApiKeyError(
                "The client token has expired; ask your backend for a new one."
            )
        principal = await self._keys.by_id(key_id)
        return dataclasses.replace(principal, conversation_id=conversation_id)
