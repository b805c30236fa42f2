"""Python client for the Avatarium v1 API.

```python
from avatarium_client import Avatarium

with Avatarium(api_key="av_test_...", base_url="http://127.0.0.1:8000") as client:
    conversation = client.conversations.create("aria-001")
    for event in client.messages.stream(conversation.id, "Hello!"):
        ...
```
"""

from avatarium_client.async_client import AsyncAvatarium, AsyncConversationSocket
from avatarium_client.client import Avatarium, ConversationSocket
from avatarium_client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    AvatariumError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from avatarium_client.models import (
    Audio,
    AudioChunk,
    Avatar,
    ClientToken,
    Conversation,
    Done,
    Message,
    Page,
    Speech,
    StreamEvent,
    TextDelta,
    Usage,
    Voice,
)
from avatarium_client.retries import RetryPolicy

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncAvatarium",
    "AsyncConversationSocket",
    "Audio",
    "AudioChunk",
    "AuthenticationError",
    "Avatar",
    "Avatarium",
    "AvatariumError",
    "ClientToken",
    "ConflictError",
    "Conversation",
    "ConversationSocket",
    "Done",
    "InvalidRequestError",
    "Message",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "ProviderUnavailableError",
    "QuotaExceededError",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
    "Speech",
    "StreamEvent",
    "TextDelta",
    "Usage",
    "Voice",
]
