"""``GET /health`` and ``GET /v1/health``: is the server able to serve?"""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from avatarium import __version__
from avatarium.api.endpoint import Call, endpoint
from avatarium.core.wire import WireJSONResponse as JSONResponse


@endpoint(auth="optional")
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


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/v1/health", health, methods=["GET"]),
]
