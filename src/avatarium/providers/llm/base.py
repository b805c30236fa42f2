"""The contract every language-model provider fulfils."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from avatarium.core.events import TextDelta, Usage


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of the conversation as the model sees it."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(slots=True)
class TokenMeter:
    """Tokens a generation has used so far, as its engine or vendor reported them (None:
    not reported). A reply stopped before its closing ``Usage`` event is charged from this,
    and whatever is None here is estimated from the prompt and the text written."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What to generate: the full prompt (system first), the model to use, and the meter
    the provider keeps up to date while it generates."""

    messages: list[ChatMessage]
    model: str | None = None
    meter: TokenMeter = field(default_factory=TokenMeter)
    # The prompt holds knowledge the reply should repeat faithfully (a provider may then
    # sample differently: the embedded model drops its repetition penalty).
    grounded: bool = False


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


@runtime_checkable
class CountsEachMessage(Protocol):
    """A provider whose prompt count is additive: ``count_tokens(messages)`` equals
    ``count_tokens([])`` plus each message's ``message_tokens``. Trimming a long history
    then counts each message once (the built-in providers are; a plugin may be)."""

    def message_tokens(self, message: ChatMessage) -> int:
        """The tokens ``message`` adds to a prompt."""
        ...
