"""HTTP routes for avatars: presets (public) and the account's own (with a key)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from avatarium.api.endpoint import Call, endpoint
from avatarium.api.operation import Doc
from avatarium.api.urls import base_url
from avatarium.api.wire_schemas import deleted, list_of, ref
from avatarium.avatars.schemas import AvatarSpec, avatar_body_schema, parse_avatar
from avatarium.core.errors import AvatarNotFoundError
from avatarium.core.wire import WireJSONResponse as JSONResponse


def _parse(call: Call, *, creating: bool) -> AvatarSpec:
    state = call.state
    return parse_avatar(
        call.json_object(),
        creating=creating,
        tts_names=state.providers.names("tts"),
        presets=[a.id for a in state.avatars.all()],
    )


@endpoint(
    Doc("The preset avatars, and with a key the account's own", response=list_of(ref("Avatar"))),
    auth="optional",
)
async def list_avatars(call: Call) -> Response:
    return JSONResponse(
        await call.state.avatar_service.list_avatars(call.principal, base_url(call.request))
    )


@endpoint(
    Doc(
        "Create an avatar of your own",
        json_body=avatar_body_schema(creating=True),
        response="Avatar",
        errors=[AvatarNotFoundError],
    ),
    write=True,
)
async def create_avatar(call: Call) -> Response:
    spec = _parse(call, creating=True)
    return JSONResponse(
        await call.state.avatar_service.create(call.caller, spec, base_url(call.request))
    )


@endpoint(
    Doc("One avatar", response="Avatar", errors=[AvatarNotFoundError]),
    auth="optional",
    avatar_client_token=True,
)
async def get_avatar(call: Call) -> Response:
    avatar_id = call.request.path_params["avatar_id"]
    return JSONResponse(
        await call.state.avatar_service.get(call.principal, avatar_id, base_url(call.request))
    )


@endpoint(
    Doc(
        "Change an avatar of your own (the top-level fields named; null clears)",
        json_body=avatar_body_schema(creating=False),
        response="Avatar",
        errors=[AvatarNotFoundError],
    ),
    write=True,
)
async def update_avatar(call: Call) -> Response:
    avatar_id = call.request.path_params["avatar_id"]
    spec = _parse(call, creating=False)
    return JSONResponse(
        await call.state.avatar_service.update(call.caller, avatar_id, spec, base_url(call.request))
    )


@endpoint(
    Doc(
        "Delete an avatar of your own (its conversations end and stay readable)",
        response=deleted("avatar"),
        errors=[AvatarNotFoundError],
    ),
    write=True,
)
async def delete_avatar(call: Call) -> Response:
    avatar_id = call.request.path_params["avatar_id"]
    return JSONResponse(await call.state.avatar_service.delete(call.caller, avatar_id))


@endpoint(
    Doc(
        "Where an avatar's face is drawn from", response="AvatarModel", errors=[AvatarNotFoundError]
    ),
    auth="optional",
    avatar_client_token=True,
)
async def get_model(call: Call) -> Response:
    avatar_id = call.request.path_params["avatar_id"]
    base = base_url(call.request)
    avatar = await call.state.avatar_service.get(call.principal, avatar_id, base)
    return JSONResponse({"avatar_id": avatar["id"], "model_url": avatar["model_url"],
                         "format": "svg"})  # fmt: skip


routes = [
    Route("/v1/avatars", list_avatars, methods=["GET"]),
    Route("/v1/avatars", create_avatar, methods=["POST"]),
    Route("/v1/avatars/{avatar_id}", get_avatar, methods=["GET"]),
    Route("/v1/avatars/{avatar_id}", update_avatar, methods=["PATCH"]),
    Route("/v1/avatars/{avatar_id}", delete_avatar, methods=["DELETE"]),
    Route("/v1/avatars/{avatar_id}/model", get_model, methods=["GET"]),
]
