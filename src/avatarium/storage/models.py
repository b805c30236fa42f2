"""Imports every table so that ``Base.metadata`` is complete (migrations, checks)."""

from avatarium.accounts.models import Account
from avatarium.avatars.models import CustomAvatar
from avatarium.conversations.models import Conversation, IdempotentResponse, Message
from avatarium.keys.models import ApiKey
from avatarium.knowledge.models import KnowledgeChunk, KnowledgeItem
from avatarium.speech.models import AudioClip
from avatarium.storage.base import Base
from avatarium.usage.models import QuotaReservation, UsagePeriod

__all__ = [
    "Account",
    "ApiKey",
    "AudioClip",
    "Base",
    "Conversation",
    "CustomAvatar",
    "IdempotentResponse",
    "KnowledgeChunk",
    "KnowledgeItem",
    "Message",
    "QuotaReservation",
    "UsagePeriod",
]
