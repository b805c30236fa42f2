"""Everything one running app holds, built once in the lifespan and shared by handlers."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from avatarium.accounts.service import AccountService
from avatarium.analytics.service import AnalyticsService
from avatarium.avatars.catalog import AvatarCatalog
from avatarium.avatars.service import AvatarService
from avatarium.conversations.service import ConversationService
from avatarium.core.clock import Clock
from avatarium.core.secrets import Signer
from avatarium.core.settings import Settings
from avatarium.jobs.runner import JobRunner
from avatarium.keys.client_tokens import ClientTokenService
from avatarium.keys.service import KeyService
from avatarium.knowledge.service import KnowledgeService
from avatarium.limits.base import RequestGate
from avatarium.listening.service import ListeningService
from avatarium.maintenance.gc import GarbageCollector
from avatarium.observability.metrics import Metrics
from avatarium.providers.registry import ProviderRegistry
from avatarium.speech.service import SpeechService
from avatarium.storage.audio import AudioStore
from avatarium.storage.db import Database
from avatarium.usage.ledger import UsageLedger
from avatarium.webhooks.events import EventLog
from avatarium.webhooks.sender import WebhookSender
from avatarium.webhooks.service import WebhookService


@dataclass
class AppState:
    """The app's long-lived collaborators."""

    settings: Settings
    db: Database
    clock: Clock
    signer: Signer
    audio: AudioStore
    avatars: AvatarCatalog
    avatar_service: AvatarService
    providers: ProviderRegistry
    keys: KeyService
    client_tokens: ClientTokenService
    accounts: AccountService
    speech: SpeechService
    conversations: ConversationService
    gate: RequestGate
    usage: UsageLedger
    listening: ListeningService
    knowledge: KnowledgeService
    jobs: JobRunner
    webhooks: WebhookService
    deliveries: JobRunner
    webhook_sender: WebhookSender
    events: EventLog
    analytics: AnalyticsService
    gc: GarbageCollector
    metrics: Metrics


def state_of(connection: HTTPConnection) -> AppState:
    """The AppState of the app serving this request."""
    state = connection.app.state.avatarium
    assert isinstance(state, AppState)
    return state
