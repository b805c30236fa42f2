"""The one error tree of the server. Every failure a client can see is one of these.

::

    AvatariumError                      (status, code, ws_close_code)
     ├── AuthenticationError            401
     │    ├── MissingApiKeyError        missing_api_key
     │    ├── InvalidApiKeyError        invalid_api_key
     │    └── ExpiredApiKeyError        expired_api_key
     ├── PermissionDeniedError          403 insufficient_permissions
     ├── InvalidRequestError            400 invalid_request
     ├── MissingParameterError          400 missing_parameter
     ├── InvalidParameterError          400 invalid_parameter
     ├── NotFoundError                  404 not_found
     │    ├── ConversationNotFoundError conversation_not_found
     │    ├── AvatarNotFoundError       avatar_not_found
     │    └── MessageNotFoundError      message_not_found
     ├── MethodNotAllowedError          405 method_not_allowed
     ├── RequestInProgressError         409 request_in_progress
     ├── RequestTooLargeError           413 request_too_large
     ├── RateLimitExceededError         429 rate_limit_exceeded   (Retry-After)
     ├── QuotaExceededError             429 quota_exceeded        (Retry-After)
     ├── InternalError                  500 internal_error
     ├── ProviderUnavailableError       503
     │    ├── AIProviderError           ai_provider_error
     │    └── TTSProviderError          tts_provider_error
     └── ServiceUnavailableError        503 service_unavailable

Leaves only set class attributes; :mod:`avatarium.api.errors` renders any of them as the JSON
envelope, an SSE ``error`` event or a WebSocket frame.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AvatariumError(Exception):
    """Root of every client-visible failure."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    ws_close_code: ClassVar[int] = 1011

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self, request_id: str | None) -> dict[str, Any]:
        """The documented envelope ``{"error": {code, message, details?, request_id}}``."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        if request_id is not None:
            error["request_id"] = request_id
        return {"error": error}


class AuthenticationError(AvatariumError):
    status_code = 401
    ws_close_code = 4401


class MissingApiKeyError(AuthenticationError):
    code = "missing_api_key"


class InvalidApiKeyError(AuthenticationError):
    code = "invalid_api_key"


class ExpiredApiKeyError(AuthenticationError):
    code = "expired_api_key"


class PermissionDeniedError(AvatariumError):
    status_code = 403
    code = "insufficient_permissions"
    ws_close_code = 4403


class InvalidRequestError(AvatariumError):
    status_code = 400
    code = "invalid_request"
    ws_close_code = 4400


class MissingParameterError(AvatariumError):
    status_code = 400
    code = "missing_parameter"
    ws_close_code = 4400

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} is required", details={"field": field, "reason": "missing"})


class InvalidParameterError(AvatariumError):
    status_code = 400
    code = "invalid_parameter"
    ws_close_code = 4400

    def __init__(self, field: str, reason: str, message: str, **extra: Any) -> None:
        super().__init__(message, details={"field": field, "reason": reason, **extra})


class NotFoundError(AvatariumError):
    status_code = 404
    code = "not_found"
    ws_close_code = 4404


class ConversationNotFoundError(NotFoundError):
    code = "conversation_not_found"


class AvatarNotFoundError(NotFoundError):
    code = "avatar_not_found"


class MessageNotFoundError(NotFoundError):
    code = "message_not_found"


class KnowledgeNotFoundError(NotFoundError):
    code = "knowledge_not_found"


class WebhookNotFoundError(NotFoundError):
    code = "webhook_not_found"


class MethodNotAllowedError(AvatariumError):
    status_code = 405
    code = "method_not_allowed"


class RequestInProgressError(AvatariumError):
    status_code = 409
    code = "request_in_progress"


class RequestTooLargeError(AvatariumError):
    status_code = 413
    code = "request_too_large"


class RateLimitExceededError(AvatariumError):
    status_code = 429
    code = "rate_limit_exceeded"
    ws_close_code = 4429


class QuotaExceededError(AvatariumError):
    status_code = 429
    code = "quota_exceeded"
    ws_close_code = 4429


class InternalError(AvatariumError):
    status_code = 500
    code = "internal_error"


class ProviderUnavailableError(AvatariumError):
    """A provider failed after retries; ``details`` says which, why, and whether to retry."""

    status_code = 503
    ws_close_code = 1011
    label: ClassVar[str] = "AI"  # which kind of provider, in messages

    def __init__(self, provider: str, reason: str, retryable: bool, message: str) -> None:
        super().__init__(
            message, details={"provider": provider, "reason": reason, "retryable": retryable}
        )


class AIProviderError(ProviderUnavailableError):
    code = "ai_provider_error"
    label = "AI"


class TTSProviderError(ProviderUnavailableError):
    code = "tts_provider_error"
    label = "speech"


class STTProviderError(ProviderUnavailableError):
    code = "stt_provider_error"
    label = "speech-to-text"


class ServiceUnavailableError(AvatariumError):
    status_code = 503
    code = "service_unavailable"
    ws_close_code = 1013


def all_error_classes() -> list[type[AvatariumError]]:
    """Every concrete error class (those with their own code), for docs checks."""
    seen: dict[str, type[AvatariumError]] = {}
    stack: list[type[AvatariumError]] = [AvatariumError]
    while stack:
        cls = stack.pop()
        seen.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return list(seen.values())
