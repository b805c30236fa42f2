"""``GET /v1/usage``: this month's messages, tokens and characters, and the limits."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from avatarium.api.endpoint import Call, endpoint
from avatarium.core.wire import WireJSONResponse as JSONResponse


@endpoint()
async def get_usage(call: Call) -> Response:
    return JSONResponse(await call.state.usage.usage(call.caller))


routes = [Route("/v1/usage", get_usage, methods=["GET"])]
