"""HTTP routes for avatar presets (public)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from avatarium.api.endpoint import Call, endpoint
from avatarium.api.urls import base_url
from avatarium.avatars.catalog import Avatar
from avatarium.core.errors import AvatarNotFoundError
from avatarium.core.wire import WireJSONResponse as JSONResponse


def _find(call: Call) -> Avatar:
    avatar_id = call.request.path_params["avatar_id"]
    avatar = call.state.avatars.get(avatar_id)
    if avatar is None:
        raise AvatarNotFoundError(f"No avatar {avatar_id!r}.", details={"field": "avatar_id"})
    return avatar


@endpoint(auth="optional")
async def list_avatars(call: Call) -> Response:
    base = base_url(call.request)
    data = [a.as_json(base) for a in call.state.avatars.all()]
    return JSONResponse({"object": "list", "data": data, "has_more": False, "next_cursor": None})


@endpoint(auth="optional")
async def get_avatar(call: Call) -> Response:
    return JSONResponse(_find(call).as_json(base_url(call.request)))


@endpoint(auth="optional")
async def get_model(call: Call) -> Response:
    avatar = _find(call)
    return JSONResponse(
        {
            "avatar_id": avatar.id,
            "model_url": avatar.model_url(base_url(call.request)),
            "format": "svg",
        }
    )


routes = [
    Route("/v1/avatars", list_avatars, methods=["GET"]),
    Route("/v1/avatars/{avatar_id}", get_avatar, methods=["GET"]),
    Route("/v1/avatars/{avatar_id}/model", get_model, methods=["GET"]),
]
