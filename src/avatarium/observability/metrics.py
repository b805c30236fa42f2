"""Prometheus metrics (``GET /metrics``, SPEC section 12), with ``prometheus-client``.

Off unless ``AVATARIUM_METRICS_TOKEN`` is set (then that bearer token is required). With
``avatarium serve --workers N`` every worker writes its samples to files in a shared
directory (the client library's multiprocess mode) and any worker's ``/metrics`` answers
for all of them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Requests and reply phases: from a cached answer (ms) to a long streamed reply (tens of s).
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ERROR_BODY_BYTES = 4_096


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_ENV))


class Metrics:
    """The server's metrics, registered in a registry of their own (one per app, so several
    apps in one process, as in the tests, do not add up)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "avatarium_requests", "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "avatarium_request_duration_seconds",
            "Time from a request's arrival to the end of its response body.",
            ["route", "method"], buckets=SECONDS, registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "avatarium_errors", "Error responses by error code (quota_exceeded, ...).",
            ["code"], registry=r,
        )  # fmt: skip
        self.reply_phase = Histogram(
            "avatarium_reply_phase_seconds",
            "Phases of stored replies: ai (the model), tts (speech), first_audio (from the "
            "send to its first audio, streamed replies).",
            ["phase"], buckets=SECONDS, registry=r,
        )  # fmt: skip
        self.limiter = Counter(
            "avatarium_limiter_decisions", "Rate-limiter decisions: admitted, or the refusal's "
            "reason (requests_per_minute, concurrent_requests).", ["decision"], registry=r,
        )  # fmt: skip
        self.provider_errors = Counter(
            "avatarium_provider_errors", "Provider failures (after retries), by kind (llm, "
            "tts, stt), provider and reason.", ["kind", "provider", "reason"], registry=r,
        )  # fmt: skip
        self.webhook_deliveries = Counter(
            "avatarium_webhook_deliveries", "Webhook delivery attempts by outcome.",
            ["outcome"], registry=r,
        )  # fmt: skip

    def exposition(self) -> bytes:
        """The text format; in multiprocess mode, every worker's samples."""
        if multiprocess():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))


class RouteNames:
    """The route template of a request, from the endpoint Starlette matched: ids in paths
    never become label values. ``unmatched`` for a path no route knows."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {}

    def bind(self, routes: Iterable[Any]) -> None:
        for route in routes:
            endpoint = getattr(route, "endpoint", None) or getattr(route, "app", None)
            path = getattr(route, "path", None)
            if endpoint is not None and path:
                self._names.setdefault(id(endpoint), str(path))

    def __call__(self, endpoint: Any) -> str:
        if endpoint is None:
            return "unmatched"
        return self._names.get(id(endpoint), "other")


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (never the raw path, so
    ids do not explode the label set), and error responses by their code."""

    def __init__(self, app: ASGIApp, metrics: Metrics, route_of: Callable[[Any], str]) -> None:
        self.app = app
        self.metrics = metrics
        self.route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        error_body: list[bytes] | None = None

        async def recording(message: Message) -> None:
            nonlocal status, error_body
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status >= 400:
                    error_body = []
            elif (
                message["type"] == "http.response.body"
                and error_body is not None
                and sum(map(len, error_body)) < ERROR_BODY_BYTES
            ):
                error_body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = self.route_of(scope.get("endpoint"))
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.duration.labels(route, method).observe(time.perf_counter() - started)
            if error_body is not None:
                self.metrics.errors.labels(_error_code(b"".join(error_body))).inc()


def _error_code(body: bytes) -> str:
    try:
        code = orjson.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "unknown"
    return str(code) if isinstance(code, str) else "unknown"
