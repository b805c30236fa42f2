"""Errors as types: one class per family of the API's documented error codes.

```
AvatariumError                       every failure this library raises
 +-- APIError                        the server answered with an error body
 |    +-- AuthenticationError        401 missing/invalid/expired key or token
 |    +-- PermissionDeniedError      403 insufficient_permissions
 |    +-- InvalidRequestError        400 invalid_request/missing_parameter/invalid_parameter,
 |    |                              405, 413
 |    +-- NotFoundError              404 *_not_found
 |    +-- ConflictError              409 request_in_progress (retried)
 |    +-- RateLimitError             429 rate_limit_exceeded (retried; .retry_after)
 |    +-- QuotaExceededError         429 quota_exceeded (never retried; .resets_at)
 |    +-- ProviderUnavailableError   503 ai_/tts_provider_error (.retryable, .provider)
 |    +-- ServerError                500 internal_error, 503 service_unavailable (retried)
 +-- APIConnectionError              no answer: refused, reset, cut mid-response (retried)
      +-- APITimeoutError            no answer in time (retried)
```
"""

from __future__ import annotations

from typing import Any


class AvatariumError(Exception):
    """Base of everything this library raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIError(AvatariumError):
    """The server answered with the documented error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = details or {}
        self.request_id = request_id
        self.headers = headers or {}

    def __str__(self) -> str:
        where = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.code}: {self.message}{where}"

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked to wait (the ``Retry-After`` header), if it said."""
        value = self.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class AuthenticationError(APIError):
    """401: the key or client token is missing, invalid, revoked or expired."""


class PermissionDeniedError(APIError):
    """403: a read-only key on a write, or a client token outside its conversation."""


class InvalidRequestError(APIError):
    """400 (and 405, 413): the request itself is wrong; ``details['field']`` says where."""


class NotFoundError(APIError):
    """404: no such conversation, avatar, message or route."""


class ConflictError(APIError):
    """409: the same Idempotency-Key is still being processed."""


class RateLimitError(APIError):
    """429 ``rate_limit_exceeded``: too many requests per minute or at once."""


class QuotaExceededError(APIError):
    """429 ``quota_exceeded``: the monthly message quota is used up until ``resets_at``."""

    @property
    def resets_at(self) -> str | None:
        value = self.details.get("resets_at")
        return str(value) if value is not None else None


class ProviderUnavailableError(APIError):
    """503 ``ai_provider_error`` / ``tts_provider_error`` / ``stt_provider_error``: a provider
    failed after retries."""

    @property
    def retryable(self) -> bool:
        return bool(self.details.get("retryable", True))

    @property
    def provider(self) -> str | None:
        value = self.details.get("provider")
        return str(value) if value is not None else None


class ServerError(APIError):
    """500 ``internal_error`` or 503 ``service_unavailable``."""


class APIConnectionError(AvatariumError):
    """The request got no (complete) answer: refused, reset, or cut mid-response."""


class APITimeoutError(APIConnectionError):
    """The request got no answer in time."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: InvalidRequestError,
    409: ConflictError,
    413: InvalidRequestError,
    429: RateLimitError,
}


def error_class(status: int, code: str) -> type[APIError]:
    """The class for an error response."""
    if code == "quota_exceeded":
        return QuotaExceededError
    if code in ("ai_provider_error", "tts_provider_error", "stt_provider_error"):
        return ProviderUnavailableError
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIError)


def error_from_body(status: int, body: Any, headers: dict[str, str]) -> APIError:
    """The typed error for an error response (or an error event's body)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        code = "internal_error" if status >= 500 else "invalid_response"
        return error_class(status, code)(status, code, f"HTTP {status} without an error body")
    code = str(error.get("code", "unknown"))
    details = error.get("details") if isinstance(error.get("details"), dict) else None
    return error_class(status, code)(
        status,
        code,
        str(error.get("message", "")),
        details,
        error.get("request_id") or headers.get("x-request-id"),
        headers,
    )


# Every documented code's HTTP status: errors that arrive inside a stream carry no status.
STATUS_OF_CODE = {
    "missing_api_key": 401,
    "invalid_api_key": 401,
    "expired_api_key": 401,
    "insufficient_permissions": 403,
    "invalid_request": 400,
    "missing_parameter": 400,
    "invalid_parameter": 400,
    "conversation_not_found": 404,
    "avatar_not_found": 404,
    "message_not_found": 404,
    "knowledge_not_found": 404,
    "webhook_not_found": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "request_in_progress": 409,
    "request_too_large": 413,
    "rate_limit_exceeded": 429,
    "quota_exceeded": 429,
    "internal_error": 500,
    "ai_provider_error": 503,
    "tts_provider_error": 503,
    "stt_provider_error": 503,
    "service_unavailable": 503,
}
