"""An avatar's safety rules, checked on each user message before the model runs.

* ``topics_to_avoid``: a message that names a topic to avoid (every word of the topic, each
  matched by its stem-ish prefix, so "politics" also catches "political") gets a polite
  redirect instead of an answer.
* escalation ``triggers``: ``asked_for_human`` (the user asks for a person: an agent, a
  human, a representative, someone real) and ``keywords`` (any listed word or phrase) hand
  the conversation over: the reply is the avatar's escalation message.

``negative_sentiment`` fires on a strongly negative message (VADER, ``sentiment.py``).
Two checks need more than the message and run in the send (``conversations/replies.py``):
topics matched by meaning (``topics.py``), and ``failed_answers`` (``declines.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from avatarium.safety.sentiment import is_negative

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Ways people ask for a person (English).
_ASKS_FOR_HUMAN = re.compile(
    r"\b(talk|speak|chat|connect|transfer|put)\b.{0,30}\b(human|person|agent|someone|somebody|"
    r"representative|operator|manager|staff|real)\b"
    r"|\b(human|real person|live agent|customer service|representative|operator)\b.{0,20}"
    r"\b(please|now)\b"
    r"|\bi want (a|an|to talk to a) (human|person|agent|representative)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the rules decided: the reply to give instead of the model's, and why."""

    reply: str
    safety: dict[str, Any]
    escalation: str | None = None  # the trigger that handed the conversation over


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _mentions(message_words: list[str], phrase: str) -> bool:
    """Every word of ``phrase`` appears in the message (by a stem-ish prefix)."""
    wanted = _words(phrase)
    if not wanted:
        return False
    return all(
        any(word.startswith(w[: max(4, len(w) - 2)]) for word in message_words) for w in wanted
    )


def check(
    message: str,
    topics_to_avoid: list[str],
    escalation: dict[str, Any] | None,
) -> Verdict | None:
    """The verdict for ``message``, or None when the model should answer."""
    words = _words(message)
    if escalation:
        for trigger in escalation.get("triggers", []):
            if trigger == "asked_for_human" and _ASKS_FOR_HUMAN.search(message):
                return escalate(escalation, "asked_for_human")
            if trigger == "negative_sentiment" and is_negative(message):
                return escalate(escalation, "negative_sentiment")
            if isinstance(trigger, dict):
                for keyword in trigger.get("keywords", []):
                    if _mentions(words, keyword):
                        return escalate(escalation, "keywords", keyword=keyword)
    for topic in topics_to_avoid:
        if _mentions(words, topic):
            return topic_verdict(topic)
    return None


def topic_verdict(topic: str) -> Verdict:
    """The polite redirect for a message about ``topic``."""
    return Verdict(
        f"I'd rather not talk about {topic}. Is there something else I can help you with?",
        {"action": "topic_blocked", "topic": topic},
    )


def filter_reply(reply: str, topics_to_avoid: list[str]) -> Verdict | None:
    """The output filter: a model's reply that brings up a topic to avoid (by the topic's
    words, as the message check does) is replaced by the same polite redirect, and the
    action is ``filter_triggered``. None when the reply may stand."""
    words = _words(reply)
    for topic in topics_to_avoid:
        if _mentions(words, topic):
            redirect = topic_verdict(topic).reply
            return Verdict(redirect, {"action": "filter_triggered", "topic": topic})
    return None


def wants(escalation: dict[str, Any] | None, trigger: str) -> bool:
    """Whether the avatar's escalation lists ``trigger`` (a name such as failed_answers)."""
    return bool(escalation) and trigger in (escalation or {}).get("triggers", [])


def escalate(escalation: dict[str, Any], trigger: str, **extra: str) -> Verdict:
    return Verdict(
        str(escalation.get("message") or ""),
        {"action": "escalated", "trigger": trigger, **extra},
        escalation=trigger,
    )
