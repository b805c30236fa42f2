"""``create_app(settings)``: the ASGI application, its routes and its lifespan."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from avatarium.accounts.service import AccountService
from avatarium.analytics import router as analytics_router
from avatarium.analytics.service import AnalyticsService
from avatarium.api import health
from avatarium.api.cors import cors_middleware
from avatarium.api.endpoint import bearer_token
from avatarium.api.errors import handle_avatarium_error, handle_http_exception
from avatarium.api.operation import Doc, documented
from avatarium.api.reference import docs_page, openapi_json
from avatarium.api.request_context import RequestContextMiddleware
from avatarium.api.security_headers import SecurityHeaders
from avatarium.api.state import AppState
from avatarium.avatars import router as avatars_router
from avatarium.avatars.catalog import AvatarCatalog
from avatarium.avatars.service import AvatarService
from avatarium.conversations import router as conversations_router
from avatarium.conversations import socket as conversation_socket
from avatarium.conversations.idempotency import IdempotencyStore
from avatarium.conversations.service import ConversationService
from avatarium.core import log_redaction
from avatarium.core.clock import Clock, SystemClock
from avatarium.core.errors import AvatariumError, InvalidApiKeyError, NotFoundError
from avatarium.core.secrets import Sealer, Signer, load_or_create_secret
from avatarium.core.settings import Settings
from avatarium.jobs.queue import JobQueue
from avatarium.jobs.runner import JobRunner
from avatarium.keys.client_tokens import ClientTokenService
from avatarium.keys.service import KeyService
from avatarium.knowledge import router as knowledge_router
from avatarium.knowledge.ingest import JOB_KIND as INGEST_JOB
from avatarium.knowledge.ingest import Indexer, IngestHandler
from avatarium.knowledge.service import KnowledgeService
from avatarium.limits.base import RequestGate
from avatarium.limits.gate import LimitGate
from avatarium.limits.memory import MemoryBackend
from avatarium.listening import router as listening_router
from avatarium.listening.service import ListeningService
from avatarium.listening.vad import shared_model as shared_vad_model
from avatarium.maintenance.gc import GarbageCollector
from avatarium.observability.metrics import CONTENT_TYPE, Metrics, MetricsMiddleware, RouteNames
from avatarium.providers.fallback import ProviderHealth
from avatarium.providers.registry import EMBEDDED_AI, EMBEDDED_STT, ProviderRegistry
from avatarium.speech import router as speech_router
from avatarium.speech.service import SpeechService
from avatarium.storage.audio import AudioStore, LocalAudioStore
from avatarium.storage.db import Database
from avatarium.usage import router as usage_router
from avatarium.usage.ledger import UsageLedger
from avatarium.webhooks import router as webhooks_router
from avatarium.webhooks.delivery import DeliveryHandler, RetrySchedule
from avatarium.webhooks.events import DELIVER_JOB, EventLog
from avatarium.webhooks.sender import WebhookSender
from avatarium.webhooks.service import WebhookService

log = logging.getLogger("avatarium")
WEB_DIR = Path(__file__).parent / "web"


def default_gate(settings: Settings) -> LimitGate:
    """Redis-backed limits when ``AVATARIUM_REDIS_URL`` is set, in-process otherwise."""
    ttl = settings.limiter_lease_ttl_s
    if settings.redis_url:
        # The Redis client is an optional extra (avatarium[redis]): say so when it is missing.
        try:
            import redis  # noqa: F401
        except ImportError as missing:
            raise RuntimeError(
                "AVATARIUM_REDIS_URL is set but the Redis client is not installed: "
                "pip install 'avatarium[redis]'"
            ) from missing
        from avatarium.limits.redis import RedisBackend

        return LimitGate(
            RedisBackend(settings.redis_url), workers=settings.workers, lease_ttl_s=ttl
        )
    return LimitGate(MemoryBackend(), lease_ttl_s=ttl)


def build_audio_store(settings: Settings) -> AudioStore:
    """The data directory's audio folder, or the S3-compatible store the settings name."""
    if not settings.audio_store:
        return LocalAudioStore(settings.data_dir / "audio")
    try:
        import boto3  # noqa: F401
    except ImportError as missing:
        raise RuntimeError(
            "AVATARIUM_AUDIO_STORE names an S3 store but the S3 client is not installed: "
            "pip install 'avatarium[s3]'"
        ) from missing
    from avatarium.storage.s3 import S3AudioStore, S3Location, S3Options, make_client

    secret = settings.s3_secret_access_key
    options = S3Options(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
        addressing_style=settings.s3_addressing_style,
    )
    return S3AudioStore(S3Location.parse(settings.audio_store), make_client(options))


def build_state(
    settings: Settings,
    *,
    clock: Clock | None = None,
    providers: ProviderRegistry | None = None,
    gate: RequestGate | None = None,
) -> AppState:
    """Wire the app's collaborators from settings (no I/O beyond reading the secret)."""
    clock = clock or SystemClock()
    secret_value = settings.secret_key.get_secret_value() if settings.secret_key else None
    secret = load_or_create_secret(secret_value, settings.data_dir)
    signer = Signer(secret)
    db = Database(settings.resolved_database_url())
    audio = build_audio_store(settings)
    avatars = AvatarCatalog(settings.avatars_file)
    providers = providers or ProviderRegistry(settings)
    events = EventLog()
    sealer = Sealer(secret)
    avatar_service = AvatarService(db, clock, avatars, providers, events)
    indexer = Indexer(providers, settings)
    knowledge = KnowledgeService(
        db, clock, avatar_service, indexer, max_attempts=settings.job_max_attempts
    )
    jobs = JobRunner(
        JobQueue(db, clock, lease_s=settings.job_lease_s),
        {INGEST_JOB: IngestHandler(db, clock, indexer)},
        poll_s=settings.job_poll_s,
    )
    knowledge.on_enqueued = jobs.wake
    # Webhook deliveries run on their own runner: a slow receiver must not hold up documents,
    # and many deliveries wait on the network at once.
    webhook_sender = WebhookSender(
        timeout_s=settings.webhook_timeout_s, allow_private=settings.webhook_allow_private
    )
    delivery_handler = DeliveryHandler(
        db, clock, sealer, webhook_sender,
        RetrySchedule(
            settings.webhook_retry_base_s, settings.webhook_retry_max_s,
            settings.webhook_retry_window_s,
        ),
    )  # fmt: skip
    deliveries = JobRunner(
        JobQueue(db, clock, lease_s=settings.job_lease_s),
        {DELIVER_JOB: delivery_handler},
        poll_s=settings.job_poll_s,
        concurrency=settings.webhook_concurrency,
        name="webhooks",
    )
    events.on_recorded = deliveries.wake
    metrics = Metrics()
    delivery_handler.on_attempt = lambda outcome: metrics.webhook_deliveries.labels(outcome).inc()
    speech = SpeechService(audio, signer, clock, settings.audio_url_ttl_s)
    idempotency = IdempotencyStore(
        db, clock, settings.idempotency_ttl_s, settings.idempotency_lease_s
    )
    conversations = ConversationService(
        db,
        clock,
        settings,
        avatar_service,
        knowledge,
        providers,
        speech,
        idempotency,
        sealer,
        ProviderHealth(settings.fallback_cooldown_s),
        events,
    )
    health = conversations.health
    health.on_failure = lambda kind, name, reason: metrics.provider_errors.labels(
        kind, name, reason
    ).inc()
    conversations.on_phase = lambda phase, seconds: metrics.reply_phase.labels(phase).observe(
        seconds
    )
    gate = gate or default_gate(settings)
    if isinstance(gate, LimitGate):
        gate.on_decision = lambda decision: metrics.limiter.labels(decision).inc()
    keys = KeyService(db, signer, clock)
    usage = UsageLedger(db, clock)
    return AppState(
        settings=settings,
        db=db,
        clock=clock,
        signer=signer,
        audio=audio,
        avatars=avatars,
        avatar_service=avatar_service,
        providers=providers,
        keys=keys,
        client_tokens=ClientTokenService(keys, signer, clock),
        accounts=AccountService(db, clock),
        speech=speech,
        conversations=conversations,
        gate=gate,
        usage=usage,
        listening=ListeningService(providers, settings, usage, conversations.health),
        knowledge=knowledge,
        jobs=jobs,
        webhooks=WebhookService(
            db, clock, sealer, events, allow_private=settings.webhook_allow_private
        ),
        deliveries=deliveries,
        webhook_sender=webhook_sender,
        events=events,
        analytics=AnalyticsService(db, clock, avatar_service),
        metrics=metrics,
        gc=GarbageCollector(
            db, clock, audio,
            idempotency_ttl_s=settings.idempotency_ttl_s,
            webhook_window_s=settings.webhook_retry_window_s,
            retention_days=settings.retention_days,
        ),
    )  # fmt: skip


@documented(Doc("The demo page: pick an avatar and talk to it", tag="pages",
                alternatives={"text/html": {"type": "string"}}))  # fmt: skip
async def web_page(_request: Request) -> Response:
    """The demo page: pick an avatar and talk to it (static HTML, CSS and ES modules)."""
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@documented(
    Doc(
        "The avatar alone, for an iframe (docs/voice.md)",
        tag="pages",
        alternatives={"text/html": {"type": "string"}},
        responses={
            "404": {
                "description": "No such avatar",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
)
async def embed_page(request: Request) -> Response:
    """The avatar alone, for an iframe: the voice-mode postMessage protocol (docs/voice.md)."""
    state = request.app.state.avatarium
    avatar_id = request.path_params["avatar_id"]
    if state.avatars.get(avatar_id) is None and not await state.avatar_service.exists(avatar_id):
        return Response("No such avatar.", status_code=404, media_type="text/plain")
    return FileResponse(WEB_DIR / "embed.html", headers={"Cache-Control": "no-cache"})


@documented(Doc("Analytics and webhook deliveries of a key's account, in the browser",
                tag="pages", alternatives={"text/html": {"type": "string"}}))  # fmt: skip
async def dashboard_page(_request: Request) -> Response:
    """Analytics and webhook deliveries for a key's account and mode, drawn in the browser."""
    return FileResponse(WEB_DIR / "dashboard.html", headers={"Cache-Control": "no-cache"})


@documented(
    Doc(
        "Prometheus metrics (with the bearer token AVATARIUM_METRICS_TOKEN; 404 when unset)",
        tag="operations",
        alternatives={"text/plain": {"type": "string"}},
        errors=[InvalidApiKeyError, NotFoundError],
    )
)
async def metrics_page(request: Request) -> Response:
    """Prometheus metrics: 404 unless ``AVATARIUM_METRICS_TOKEN`` is set; then only with
    that bearer token (else 401 ``invalid_api_key``)."""
    state = request.app.state.avatarium
    token = state.settings.metrics_token
    if token is None:
        raise HTTPException(status_code=404)
    given = bearer_token(request)
    expected = token.get_secret_value()
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise InvalidApiKeyError("/metrics needs the bearer token AVATARIUM_METRICS_TOKEN.")
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    providers: ProviderRegistry | None = None,
    gate: RequestGate | None = None,
    migrate: bool = True,
) -> Starlette:
    """The Avatarium ASGI app. The lifespan migrates the database and loads the model."""
    state = build_state(settings, clock=clock, providers=providers, gate=gate)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        log_redaction.install()  # after the server configured its loggers
        if migrate:
            await state.db.migrate()
        embedded = state.providers.llm(EMBEDDED_AI)
        if embedded is not None and hasattr(embedded, "engine"):
            embedded.engine()  # load the model before the first request, not during it
        recogniser = state.providers.stt(EMBEDDED_STT)
        if recogniser is not None and hasattr(recogniser, "engine"):
            await asyncio.to_thread(recogniser.engine)
            await asyncio.to_thread(shared_vad_model)
        # Background jobs (documents) start once the tables exist; one runner per process,
        # and any number of processes and hosts may run one.
        state.jobs.start()
        state.deliveries.start()
        gc_task = None
        if settings.gc_interval_s > 0:
            gc_task = asyncio.create_task(state.gc.run_periodically(settings.gc_interval_s))
        try:
            yield
        finally:
            if gc_task is not None:
                gc_task.cancel()
            await state.deliveries.aclose()
            await state.jobs.aclose()
            await state.webhook_sender.aclose()
            await state.gate.aclose()
            await state.providers.aclose()
            await state.conversations.byok.aclose()
            await state.db.dispose()

    route_names = RouteNames()
    app = Starlette(
        routes=[
            *health.routes,
            *avatars_router.routes,
            *knowledge_router.routes,
            *conversations_router.routes,
            *conversation_socket.routes,
            *speech_router.routes,
            *usage_router.routes,
            *listening_router.routes,
            *webhooks_router.routes,
            *analytics_router.routes,
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/docs", docs_page, methods=["GET"]),
            Route("/", web_page, methods=["GET"]),
            Route("/dashboard", dashboard_page, methods=["GET"]),
            Route("/metrics", metrics_page, methods=["GET"]),
            Route("/embed/{avatar_id}", embed_page, methods=["GET"]),
            Mount("/static", app=StaticFiles(directory=WEB_DIR), name="static"),
        ],
        middleware=[
            # Outermost first: every answer, a refused CORS preflight included, gets a
            # request id and the security headers (added in one wrapper, they cost little).
            Middleware(RequestContextMiddleware, security=SecurityHeaders(settings)),
            Middleware(MetricsMiddleware, metrics=state.metrics, route_of=route_names),
            *cors_middleware(settings),
        ],
        exception_handlers={
            AvatariumError: handle_avatarium_error,
            HTTPException: handle_http_exception,
        },
        lifespan=lifespan,
    )
    app.state.avatarium = state
    route_names.bind(app.routes)
    return app


def create_app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` and multi-worker serving."""
    return create_app(Settings())
