"""A reply the rules wrote (a redirect, a hand-off), served as if a model had written it,
so it is stored, spoken and streamed like any other reply."""

from __future__ import annotations

from collections.abc import AsyncIterator

from avatarium.core.events import TextDelta, Usage
from avatarium.providers.llm.base import ChatMessage, ChatRequest

NAME = "safety"


class CannedReply:
    """Writes one fixed text; costs no tokens."""

    name = NAME
    default_model = "rules"
    context_tokens = 1_000_000
    max_reply_tokens = 0

    def __init__(self, text: str) -> None:
        self.text = text

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        return 0

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | Usage]:
        request.meter.prompt_tokens, request.meter.completion_tokens = 0, 0
        yield TextDelta(self.text)
        yield Usage(ai_tokens=0)
