"""What the model sees: the system prompt, as much recent history as fits, the new message.

A send's cost must not grow with the conversation: the history is read newest first and
bounded (``AVATARIUM_HISTORY_MAX_MESSAGES``), and trimming counts each turn once, walking
back from the newest, instead of re-counting the whole remaining history per dropped turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from avatarium.core.errors import InvalidParameterError
from avatarium.providers.llm.base import ChatMessage, CountsEachMessage, LLMProvider


class Turn(NamedTuple):
    """A stored message as the prompt needs it."""

    role: str
    content: str


def build_prompt(
    provider: LLMProvider, system_prompt: str, history: Sequence[Turn], content: str
) -> list[ChatMessage]:
    """The prompt: the newest whole turns of ``history`` (oldest first) that fit beside the
    system prompt and ``content``, leaving room for the reply."""
    budget = provider.context_tokens - provider.max_reply_tokens
    system = ChatMessage("system", system_prompt)
    latest = ChatMessage("user", content)
    used = provider.count_tokens([system, latest])
    if used > budget:
        raise InvalidParameterError(
            "content",
            "too_long",
            "The message is too long for the model's context window.",
        )
    additive = isinstance(provider, CountsEachMessage)
    if isinstance(provider, CountsEachMessage):
        cost = provider.message_tokens
    else:
        overhead = provider.count_tokens([])

        def cost(message: ChatMessage) -> int:
            return provider.count_tokens([message]) - overhead

    # Walk back from the newest turn, counting each message once; keep whole turns (a
    # prompt never opens with an assistant line).
    kept: list[ChatMessage] = []
    pending: list[ChatMessage] = []
    pending_cost = 0
    for index in range(len(history) - 1, -1, -1):
        turn = history[index]
        message = ChatMessage("user" if turn.role == "user" else "assistant", turn.content)
        pending.append(message)
        pending_cost += cost(message)
        if message.role != "user":
            continue
        if used + pending_cost > budget:
            break
        used += pending_cost
        kept.extend(pending)
        pending, pending_cost = [], 0
    kept.reverse()
    prompt = [system, *kept, latest]
    if additive:
        return prompt
    # A counter that is not additive: check the whole, and drop more turns from the front
    # while it is over.
    while kept and provider.count_tokens(prompt) > budget:
        drop = 1
        while drop < len(kept) and kept[drop].role != "user":
            drop += 1
        kept = kept[drop:]
        prompt = [system, *kept, latest]
    return prompt
