"""``/v1/avatars/{avatar_id}/knowledge``: an avatar's knowledge items."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from avatarium.api.endpoint import Call, endpoint
from avatarium.api.validation import Field, validate, validate_metadata
from avatarium.core.errors import InvalidParameterError, MissingParameterError
from avatarium.core.wire import WireJSONResponse as JSONResponse
from avatarium.knowledge.service import default_title

MAX_TEXT = 100_000
TEXT_FIELDS = [
    Field("type", str, required=True),
    Field("content", str, required=True, not_blank=True, max_length=MAX_TEXT),
    Field("title", str, not_blank=True, max_length=300),
    Field("metadata", dict),
]
QA_FIELDS = [
    Field("type", str, required=True),
    Field("question", str, required=True, not_blank=True, max_length=1_000),
    Field("answer", str, required=True, not_blank=True, max_length=5_000),
    Field("title", str, not_blank=True, max_length=300),
    Field("metadata", dict),
]


@endpoint(write=True)
async def add_knowledge(call: Call) -> Response:
    avatar_id = call.request.path_params["avatar_id"]
    body = call.json_object()
    kind = body.get("type")
    if kind is None:
        raise MissingParameterError("type")
    if kind not in ("text", "qa"):
        # Documents (multipart, processed in the background) are not accepted yet.
        raise InvalidParameterError(
            "type", "not_allowed", "type must be text or qa.", allowed=["text", "qa"]
        )
    fields = validate(body, TEXT_FIELDS if kind == "text" else QA_FIELDS)
    metadata = validate_metadata(fields["metadata"]) if "metadata" in fields else {}
    if kind == "text":
        text = fields["content"]
        title = fields.get("title") or default_title(text)
    else:
        text = f"Question: {fields['question']}\nAnswer: {fields['answer']}"
        title = fields.get("title") or default_title(fields["question"])
    return JSONResponse(
        await call.state.knowledge.add(
            call.caller, avatar_id, kind=kind, text=text, title=title, metadata=metadata
        )
    )


@endpoint()
async def list_knowledge(call: Call) -> Response:
    avatar_id = call.request.path_params["avatar_id"]
    return JSONResponse(await call.state.knowledge.list_items(call.caller, avatar_id))


@endpoint()
async def get_knowledge(call: Call) -> Response:
    params = call.request.path_params
    return JSONResponse(
        await call.state.knowledge.get(call.caller, params["avatar_id"], params["knowledge_id"])
    )


@endpoint(write=True)
async def delete_knowledge(call: Call) -> Response:
    params = call.request.path_params
    return JSONResponse(
        await call.state.knowledge.delete(call.caller, params["avatar_id"], params["knowledge_id"])
    )


routes = [
    Route("/v1/avatars/{avatar_id}/knowledge", add_knowledge, methods=["POST"]),
    Route("/v1/avatars/{avatar_id}/knowledge", list_knowledge, methods=["GET"]),
    Route("/v1/avatars/{avatar_id}/knowledge/{knowledge_id}", get_knowledge, methods=["GET"]),
    Route("/v1/avatars/{avatar_id}/knowledge/{knowledge_id}", delete_knowledge, methods=["DELETE"]),
]
