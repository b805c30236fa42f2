"""``/v1/avatars/{avatar_id}/knowledge``: an avatar's knowledge items."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from avatarium.api.body import decode_json
from avatarium.api.endpoint import Call, endpoint
from avatarium.api.multipart import check_form
from avatarium.api.operation import BINARY, Doc
from avatarium.api.validation import (
    METADATA_SCHEMA,
    Field,
    body_schema,
    validate,
    validate_metadata,
)
from avatarium.api.wire_schemas import deleted, list_of, ref
from avatarium.core.errors import (
    AvatarNotFoundError,
    InvalidParameterError,
    KnowledgeNotFoundError,
    MissingParameterError,
)
from avatarium.core.wire import WireJSONResponse as JSONResponse
from avatarium.knowledge.extract import SUPPORTED, detect_format
from avatarium.knowledge.service import default_title

MAX_TEXT = 100_000
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
KINDS = ["text", "qa", "document"]
TEXT_FIELDS = [
    Field("type", str, required=True, schema={"const": "text"}),
    Field("content", str, required=True, not_blank=True, max_length=MAX_TEXT),
    Field("title", str, not_blank=True, max_length=300),
    Field("metadata", dict, schema=METADATA_SCHEMA),
]
QA_FIELDS = [
    Field("type", str, required=True, schema={"const": "qa"}),
    Field("question", str, required=True, not_blank=True, max_length=1_000),
    Field("answer", str, required=True, not_blank=True, max_length=5_000),
    Field("title", str, not_blank=True, max_length=300),
    Field("metadata", dict, schema=METADATA_SCHEMA),
]


@endpoint(
    Doc(
        "Add knowledge to an avatar of your own: a text, a Q&A pair or a document",
        description="Documents (PDF up to 50 pages, DOCX, TXT, Markdown, HTML; at most 10 "
        "MB) go as multipart/form-data and are processed in the background: `status` is "
        "`processing` until they are `ready` (or `failed`).",
        json_body={"oneOf": [body_schema(TEXT_FIELDS), body_schema(QA_FIELDS)]},
        form={"type": {"type": "string", "const": "document"}, "file": BINARY,
              "title": {"type": "string", "maxLength": 300},
              "metadata": {"type": "string", "description": "A JSON object."}},
        form_required=["type", "file"],
        response="Knowledge",
        errors=[AvatarNotFoundError],
    ),
    write=True,
    upload_limit=MAX_DOCUMENT_BYTES,
)  # fmt: skip
async def add_knowledge(call: Call) -> Response:
    avatar_id = call.request.path_params["avatar_id"]
    if call.is_multipart:
        return await _add_document(call, avatar_id)
    body = call.json_object()
    kind = body.get("type")
    if kind is None:
        raise MissingParameterError("type")
    if kind == "document":
        raise InvalidParameterError(
            "type", "not_allowed",
            "Send a document as multipart/form-data with type=document and a 'file' part.",
        )  # fmt: skip
    if kind not in ("text", "qa"):
        raise InvalidParameterError(
            "type", "not_allowed", "type must be text, qa or document.", allowed=KINDS
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


async def _add_document(call: Call, avatar_id: str) -> Response:
    form = await call.form(MAX_DOCUMENT_BYTES)
    check_form(form, {"type", "title", "metadata"}, {"file"})
    kind = form.fields.get("type")
    if kind is None:
        raise MissingParameterError("type")
    if kind != "document":
        raise InvalidParameterError(
            "type", "not_allowed", "A multipart body adds a document: type=document.",
            allowed=["document"],
        )  # fmt: skip
    upload = form.files.get("file")
    if upload is None:
        raise MissingParameterError("file")
    if not upload.data:
        raise InvalidParameterError("file", "empty", "The file is empty.")
    fmt = detect_format(upload.filename, upload.content_type, upload.data[:512])
    if fmt is None:
        raise InvalidParameterError(
            "file", "unsupported_format", f"The file must be {SUPPORTED}.",
            allowed=["pdf", "docx", "html", "md", "txt"],
        )  # fmt: skip
    fields = validate(
        {k: v for k, v in form.fields.items() if k == "title"},
        [Field("title", str, not_blank=True, max_length=300)],
    )
    metadata: dict[str, str] = {}
    if "metadata" in form.fields:
        parsed = decode_json(form.fields["metadata"], "metadata")
        if not isinstance(parsed, dict):
            raise InvalidParameterError(
                "metadata", "invalid_type", "metadata must be a JSON object."
            )
        metadata = validate_metadata(parsed)
    title = fields.get("title") or default_title(upload.filename)
    return JSONResponse(
        await call.state.knowledge.add_document(
            call.caller, avatar_id, fmt=fmt, data=upload.data, title=title, metadata=metadata
        )
    )


@endpoint(
    Doc("An avatar's knowledge", response=list_of(ref("Knowledge")), errors=[AvatarNotFoundError])
)
async def list_knowledge(call: Call) -> Response:
    avatar_id = call.request.path_params["avatar_id"]
    return JSONResponse(await call.state.knowledge.list_items(call.caller, avatar_id))


@endpoint(
    Doc(
        "One knowledge item",
        response="Knowledge",
        errors=[AvatarNotFoundError, KnowledgeNotFoundError],
    )
)
async def get_knowledge(call: Call) -> Response:
    params = call.request.path_params
    return JSONResponse(
        await call.state.knowledge.get(call.caller, params["avatar_id"], params["knowledge_id"])
    )


@endpoint(
    Doc(
        "Delete a knowledge item (the avatar stops using it at once)",
        response=deleted("knowledge"),
        errors=[AvatarNotFoundError, KnowledgeNotFoundError],
    ),
    write=True,
)
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
