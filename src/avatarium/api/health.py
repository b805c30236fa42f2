"""``GET /health`` and ``GET /v1/health``: is the server able to serve?"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from avatarium import __version__
from avatarium.api.endpoint import Call, endpoint
from avatarium.api.operation import Doc, documented
from avatarium.api.state import state_of
from avatarium.api.wire_schemas import ref
from avatarium.core.wire import WireJSONResponse as JSONResponse

UNHEALTHY = {
    "503": {
        "description": "A check failed (the body names it)",
        "content": {"application/json": {"schema": ref("Health")}},
    }
}


@endpoint(
    Doc(
        "Is the server able to serve? (database and rate limiter)",
        response="Health",
        tag="health",
        responses=UNHEALTHY,
    ),
    auth="optional",
)
async def health(call: Call) -> Response:
    state = call.state
    checks = {
        "database": "ok" if await state.db.ping() else "unavailable",
        "rate_limiter": await state.gate.status(),
    }
    # Degraded limits still protect the service: report it, but keep serving.
    healthy = checks["database"] == "ok" and checks["rate_limiter"] in ("ok", "degraded")
    body_status = "ok" if healthy else "unavailable"
    body = {"status": body_status, "version": __version__, "checks": checks}
    return JSONResponse(body, status_code=200 if healthy else 503)


@documented(Doc("Liveness: the process answers", response="Health", tag="health"))
async def live(_request: Request) -> Response:
    """Liveness: the process answers (nothing else is checked, so a database outage does
    not get a healthy process restarted)."""
    return JSONResponse({"status": "ok"})


@documented(
    Doc(
        "Readiness: the database, Redis (when configured) and the audio store answer",
        response="Health",
        tag="health",
        responses=UNHEALTHY,
    )
)
async def ready(request: Request) -> Response:
    """Readiness: 200 when the database, Redis (when configured) and the audio store all
    answer, else 503 naming the failing check; a load balancer stops sending traffic."""
    state = state_of(request)

    def verdict(ok: bool) -> str:
        return "ok" if ok else "failed"

    checks = {
        "database": verdict(await state.db.ping()),
        "redis": (
            verdict(await state.gate.status() == "ok")
            if state.settings.redis_url
            else "not_configured"
        ),
        "audio_store": verdict(await state.audio.ping()),
    }
    healthy = "failed" not in checks.values()
    body = {"status": "ok" if healthy else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if healthy else 503)


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/v1/health", health, methods=["GET"]),
    Route("/health/live", live, methods=["GET"]),
    Route("/health/ready", ready, methods=["GET"]),
]
