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


QUESTION_LEAD = "\n\nAnswer from the text above if it answers this: "


def grounded(
    provider: LLMProvider, system_prompt: str, question: str, hits: list[Hit]
) -> tuple[str, str, list[Hit]]:
    """The system prompt and the question as the model sees them, with as many of ``hits``
    (best first) as fit the knowledge budget; and the hits used. Facts go into the system
    prompt, or just before the question for providers that say they follow them better
    there (``knowledge_in_user_turn``: the embedded model). The stored message is the
    user's own either way."""
    if not hits:
        return system_prompt, question, []
    budget = int((provider.context_tokens - provider.max_reply_tokens) * KNOWLEDGE_SHARE)
    in_user_turn = bool(getattr(provider, "knowledge_in_user_turn", False))
    hits = hits[: int(getattr(provider, "knowledge_passages", len(hits)))]
    used: list[Hit] = []
    text = "" if in_user_turn else system_prompt + PREAMBLE
    for hit in hits:
        candidate = f"{text}\n\n{hit.content}" if in_user_turn else f"{text}\n- {hit.content}"
        if provider.count_tokens([ChatMessage("system", candidate)]) > budget:
            break
        text, used = candidate, [*used, hit]
    if not used:
        return system_prompt, question, []
    if in_user_turn:
        return system_prompt, text.strip() + QUESTION_LEAD + question, used
    return text, question, used


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
