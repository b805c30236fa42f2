"""The contract every language-model provider fulfils."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from avatarium.core.events import TextDelta, Usage


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of the conversation as the model sees it."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What to generate: the full prompt (system first) and the model to use."""

    messages: list[ChatMessage]
    model: str | None = None


@runtime_checkable
class LLMProvider(Protocol):
    """Streams a reply as ``TextDelta`` events and ends with one ``Usage`` event.

    Failures are raised as :class:`avatarium.providers.errors.ProviderError`.
    """

    name: str
    default_model: str
    context_tokens: int
    max_reply_tokens: int

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        """Tokens the prompt made of ``messages`` takes (exact or a safe estimate)."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | Usage]:
        """Generate; stopping the iteration early cancels the generation."""
        ...
