"""``GET /health`` and ``GET /v1/health``: is the server able to serve?"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from avatarium import __version__
from avatarium.api.endpoint import Call, endpoint


@endpoint(auth="optional")
async def health(call: Call) -> Response:
    state = call.state
    ping = getattr(state.gate, "ping", None)
    limiter_ok = await ping() if ping is not None else True
    checks = {
        "database": "ok" if await state.db.ping() else "unavailable",
        "rate_limiter": "ok" if limiter_ok else "unavailable",
    }
    healthy = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if healthy else "unavailable", "version": __version__, "checks": checks}
    return JSONResponse(body, status_code=200 if healthy else 503)


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/v1/health", health, methods=["GET"]),
]
