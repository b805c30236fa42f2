"""What the model sees: the system prompt, as much recent history as fits, the new message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from avatarium.core.errors import InvalidParameterError
from avatarium.providers.llm.base import ChatMessage, LLMProvider


class Turn(NamedTuple):
    """A stored message as the prompt needs it."""

    role: str
    content: str


def build_prompt(
    provider: LLMProvider, system_prompt: str, history: Sequence[Turn], content: str
) -> list[ChatMessage]:
    """The prompt, trimmed from the oldest turns until it leaves room for the reply."""
    budget = provider.context_tokens - provider.max_reply_tokens
    system = ChatMessage("system", system_prompt)
    latest = ChatMessage("user", content)
    turns = [ChatMessage("user" if m.role == "user" else "assistant", m.content) for m in history]
    if provider.count_tokens([system, latest]) > budget:
        raise InvalidParameterError(
            "content",
            "too_long",
            "The message is too long for the model's context window.",
        )
    # Drop whole turns from the front; a prompt should never open with an assistant line.
    start = 0
    while start < len(turns) and provider.count_tokens([system, *turns[start:], latest]) > budget:
        start += 1
        while start < len(turns) and turns[start].role != "user":
            start += 1
    return [system, *turns[start:], latest]
