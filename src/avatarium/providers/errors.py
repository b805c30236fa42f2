"""Provider-neutral failures: adapters turn vendor and transport errors into these."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from avatarium.core.errors import ProviderUnavailableError

E = TypeVar("E", bound=ProviderUnavailableError)


class FailureCategory(StrEnum):
    """Why a provider call failed; decides retry and the client-facing ``reason``."""

    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
    AUTH_FAILED = "auth_failed"
    BAD_RESPONSE = "bad_response"

    @property
    def retryable(self) -> bool:
        return self in (
            FailureCategory.TIMEOUT,
            FailureCategory.UNAVAILABLE,
            FailureCategory.RATE_LIMITED,
        )


class ProviderError(Exception):
    """A provider call failed for ``category``; ``retry_after`` is the vendor's hint in seconds."""

    def __init__(
        self,
        category: FailureCategory,
        provider: str,
        message: str,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.category = category
        self.provider = provider
        self.message = message
        self.retry_after = retry_after
        self.attempts = 1  # calls made, retries included (set by the retry loop)


def as_api_error(error: ProviderError, kind: type[E]) -> E:
    """The documented ``ai_provider_error`` / ``tts_provider_error`` for a provider failure."""
    return kind(
        error.provider,
        error.category.value,
        error.category.retryable,
        f"The {kind.label} provider failed: {error.message}",
    )
