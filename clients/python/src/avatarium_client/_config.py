"""Client settings shared by the sync and async clients."""

from __future__ import annotations

import os
from dataclasses import dataclass

from avatarium_client._core import DEFAULT_BASE_URL, USER_AGENT
from avatarium_client.errors import AvatariumError
from avatarium_client.retries import RetryPolicy


@dataclass(frozen=True)
class ClientConfig:
    api_key: str
    base_url: str
    timeout_s: float
    retry: RetryPolicy

    @classmethod
    def build(
        cls,
        api_key: str | None,
        base_url: str | None,
        timeout_s: float,
        max_attempts: int,
        backoff_base_s: float,
        backoff_max_s: float,
        deadline_s: float,
    ) -> ClientConfig:
        key = api_key or os.environ.get("AVATARIUM_API_KEY")
        if not key:
            raise AvatariumError("No API key: pass api_key= or set AVATARIUM_API_KEY.")
        url = (base_url or os.environ.get("AVATARIUM_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        retry = RetryPolicy(max_attempts, backoff_base_s, backoff_max_s, deadline_s)
        return cls(key, url, timeout_s, retry)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "User-Agent": USER_AGENT}

    def socket_url(self, conversation_id: str, token: str | None = None) -> str:
        scheme, rest = self.base_url.split("://", 1)
        ws = {"https": "wss"}.get(scheme, "ws")
        url = f"{ws}://{rest}/v1/conversations/{conversation_id}/ws"
        return f"{url}?token={token}" if token else url
