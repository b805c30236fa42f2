"""Imports every table so that ``Base.metadata`` is complete (migrations, checks)."""

from avatarium.accounts.models import Account
from avatarium.analytics.models import ActivityDay, LatencyDay
from avatarium.avatars.models import CustomAvatar
from avatarium.conversations.models import Conversation, IdempotentResponse, Message
from avatarium.jobs.models import Job
from avatarium.keys.models import ApiKey
from avatarium.knowledge.models import KnowledgeChunk, KnowledgeItem, KnowledgeUpload
from avatarium.safety.models import SafetyEvent
from avatarium.speech.models import AudioClip
from avatarium.storage.base import Base
from avatarium.usage.models import QuotaReservation, UsagePeriod
from avatarium.webhooks.models import Webhook, WebhookDelivery, WebhookEvent

__all__ = [
    "Account",
    "ActivityDay",
    "ApiKey",
    "AudioClip",
    "Base",
    "Conversation",
    "CustomAvatar",
    "IdempotentResponse",
    "Job",
    "KnowledgeChunk",
    "KnowledgeItem",
    "KnowledgeUpload",
    "LatencyDay",
    "Message",
    "QuotaReservation",
    "SafetyEvent",
    "UsagePeriod",
    "Webhook",
    "WebhookDelivery",
    "WebhookEvent",
]
