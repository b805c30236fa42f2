"""Putting retrieved knowledge into the prompt, and describing it on the reply."""

from __future__ import annotations

from typing import Any

from avatarium.knowledge.retrieval import Hit
from avatarium.providers.llm.base import ChatMessage, LLMProvider

EXCERPT_CHARS = 200
# Knowledge may take at most this share of what the prompt can hold beside the reply.
KNOWLEDGE_SHARE = 0.4
PREAMBLE = (
    "\n\nFacts from your knowledge base (use them when they answer the question, and say "
    "so plainly; do not invent facts that are not here):"
)


def grounded_prompt(
    provider: LLMProvider, system_prompt: str, hits: list[Hit]
) -> tuple[str, list[Hit]]:
    """The system prompt with as many of ``hits`` (best first) as fit the knowledge budget,
    and the hits used."""
    if not hits:
        return system_prompt, []
    budget = int((provider.context_tokens - provider.max_reply_tokens) * KNOWLEDGE_SHARE)
    used: list[Hit] = []
    text = system_prompt + PREAMBLE
    for hit in hits:
        candidate = f"{text}\n- {hit.content}"
        if provider.count_tokens([ChatMessage("system", candidate)]) > budget:
            break
        text, used = candidate, [*used, hit]
    return (text, used) if used else (system_prompt, [])


def sources_json(hits: list[Hit]) -> list[dict[str, Any]]:
    """The reply's ``sources``."""
    out = []
    for hit in hits:
        excerpt = " ".join(hit.content.split())
        if len(excerpt) > EXCERPT_CHARS:
            excerpt = excerpt[: EXCERPT_CHARS - 1].rstrip() + "…"
        out.append(
            {"knowledge_id": hit.knowledge_id, "title": hit.title, "excerpt": excerpt,
             "score": round(hit.score, 4)}
        )  # fmt: skip
    return out
