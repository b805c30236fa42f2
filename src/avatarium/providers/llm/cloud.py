"""What the cloud language-model adapters share: configuration and prompt budgeting."""

from __future__ import annotations

from dataclasses import dataclass

from avatarium.providers.http import RetryPolicy, new_client
from avatarium.providers.llm.base import ChatMessage

# Cloud models have large windows; we budget conservatively on characters, since exact
# tokenizers are vendor-side. About four characters per token for English.
CLOUD_CONTEXT_TOKENS = 16_000


@dataclass(frozen=True, slots=True)
class CloudConfig:
    """One cloud provider's endpoint and credentials (from settings, or a BYOK key)."""

    name: str
    api_key: str
    base_url: str
    model: str
    max_tokens: int
    policy: RetryPolicy


def estimate_tokens(messages: list[ChatMessage]) -> int:
    """A safe over-estimate of a prompt's tokens without the vendor's tokenizer."""
    return sum(len(m.content) // 3 + 4 for m in messages) + 2


def estimate_message_tokens(message: ChatMessage) -> int:
    """What one message adds to :func:`estimate_tokens` (the estimate is additive)."""
    return len(message.content) // 3 + 4


def split_system(messages: list[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    """The system prompt and the remaining turns (vendors that take it separately)."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    return system, [m for m in messages if m.role != "system"]


class CloudLLM:
    """What every cloud LLM adapter holds: its configuration and one connection pool."""

    context_tokens = CLOUD_CONTEXT_TOKENS

    def __init__(self, config: CloudConfig) -> None:
        self.config = config
        self.name = config.name
        self.default_model = config.model
        self.max_reply_tokens = config.max_tokens
        self._client = new_client(config.policy)

    async def aclose(self) -> None:
        """Close the connection pool (at shutdown)."""
        await self._client.aclose()

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        return estimate_tokens(messages)

    def message_tokens(self, message: ChatMessage) -> int:
        return estimate_message_tokens(message)
