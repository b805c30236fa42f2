"""``GET /v1/usage``: this month's messages, tokens and characters, and the limits."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from avatarium.api.endpoint import Call, endpoint
from avatarium.api.operation import Doc
from avatarium.core.wire import WireJSONResponse as JSONResponse


@endpoint(Doc("This month's messages, tokens, characters and seconds, and the limits",
             response="Usage"))  # fmt: skip
async def get_usage(call: Call) -> Response:
    return JSONResponse(await call.state.usage.usage(call.caller))


routes = [Route("/v1/usage", get_usage, methods=["GET"])]
