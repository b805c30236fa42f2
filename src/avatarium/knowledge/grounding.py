"""Putting retrieved knowledge into the prompt, and describing it on the reply."""

from __future__ import annotations

import re
from typing import Any

from avatarium.knowledge.retrieval import Hit, query_words
from avatarium.providers.llm.base import ChatMessage, LLMProvider

EXCERPT_CHARS = 200
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[^\W_]{2,}", re.UNICODE)
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


def excerpt_of(content: str, question: str) -> str:
    """About ``EXCERPT_CHARS`` of ``content``, from the sentence sharing most words with the
    question (a chunk often opens with text around the fact, not the fact itself)."""
    flat = " ".join(content.split())
    if len(flat) <= EXCERPT_CHARS:
        return flat
    words = set(query_words(question))
    sentences = _SENTENCE.split(flat)
    best, best_score, offset, start = 0, 0, 0, 0
    for sentence in sentences:
        score = len(words & {w.lower() for w in _WORD.findall(sentence)})
        if score > best_score:
            best, best_score = offset, score
        offset += len(sentence) + 1
    start = best if flat[best:] and len(flat) - best >= EXCERPT_CHARS // 2 else 0
    text = flat[start:]
    prefix = "…" if start else ""
    if len(text) > EXCERPT_CHARS:
        text = text[: EXCERPT_CHARS - 1].rstrip() + "…"
    return prefix + text


def sources_json(hits: list[Hit], question: str = "") -> list[dict[str, Any]]:
    """The reply's ``sources``."""
    out = []
    for hit in hits:
        excerpt = excerpt_of(hit.content, question)
        out.append(
            {"knowledge_id": hit.knowledge_id, "title": hit.title, "excerpt": excerpt,
             "score": round(hit.score, 4)}
        )  # fmt: skip
    return out
