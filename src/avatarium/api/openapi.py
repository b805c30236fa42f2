"""The OpenAPI 3.1 document of the running app, built from its routes.

Every route's handler carries an :class:`~avatarium.api.operation.Operation`: the pipeline's
part (authentication, permissions, limits, body handling) comes from the arguments that
switch those checks on, and the handler's own part names the body fields and query
parameters it validates with (the same spec objects). The error responses of each operation
list the codes it can answer with, per status, as an enum on the error schema's ``code``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.routing import BaseRoute, Route, WebSocketRoute

from avatarium.api.operation import Doc, Operation, operation_of
from avatarium.api.validation import body_schema
from avatarium.api.wire_schemas import SCHEMAS, Schema, ref
from avatarium.core import errors as e

BODY_METHODS = {"POST", "PUT", "PATCH"}
PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")

SOCKET_DESCRIPTION = """\
A WebSocket (`GET` with `Upgrade: websocket`; 101 Switching Protocols). Authenticate with
`Authorization: Bearer` or `?token=` (an API key or the conversation's client token); a bad
one closes the socket with 4401 (4403 permission, 4404 not found).

Client frames (JSON text): `{"type": "message", "content", "tts"?}`, `{"type": "cancel"}`,
`{"type": "ping"}`; for voice, `{"type": "audio.start", ...}`, binary audio frames and
`{"type": "audio.stop"}`.

Server frames: `{"type": "ready", "conversation_id"}` on open; per turn the same sequence as
the Server-Sent Events of a send (`message.delta`, `audio`, `done` or `error`), `pong`, and
for voice `transcript.partial`, `transcript.final`, `state`, `interrupted`, `cancelled`. A
failed turn does not close the socket; limits and quota apply to every turn. On shutdown the
socket is closed with 1012 once its turn is over.
"""

_STATUS_TEXT = {
    400: "Invalid request",
    401: "Authentication failed",
    403: "Not permitted",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    429: "Limit reached",
    500: "Internal error",
    503: "Unavailable",
}


def _pipeline_errors(operation: Operation, method: str) -> list[type[e.AvatariumError]]:
    """The errors the request pipeline itself can answer an operation with."""
    found: list[type[e.AvatariumError]] = []
    if operation.auth != "none":
        found += [e.MissingApiKeyError, e.InvalidApiKeyError, e.ExpiredApiKeyError]
        found += [e.PermissionDeniedError, e.RateLimitExceededError]
    if operation.admitted and method in BODY_METHODS:
        found += [e.InvalidRequestError, e.RequestTooLargeError]
        found += [e.MissingParameterError, e.InvalidParameterError]
    if any(q.type is int or q.allowed is not None for q in operation.doc.query):
        found.append(e.InvalidParameterError)  # what Query.read can refuse
    if operation.admitted:
        found += [e.InternalError, e.ServiceUnavailableError]
    return found


def _error_responses(errors: Iterable[type[e.AvatariumError]]) -> dict[str, Any]:
    by_status: dict[int, list[str]] = defaultdict(list)
    for error in errors:
        if error.code not in by_status[error.status_code]:
            by_status[error.status_code].append(error.code)
    responses: dict[str, Any] = {}
    for status in sorted(by_status):
        codes = by_status[status]
        schema = {
            "allOf": [
                ref("Error"),
                {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
            ]
        }
        responses[str(status)] = {
            "description": f"{_STATUS_TEXT.get(status, 'Error')}: {', '.join(codes)}",
            "content": {"application/json": {"schema": schema}},
        }
    return responses


def _success(doc: Doc) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if doc.response is not None:
        schema = ref(doc.response) if isinstance(doc.response, str) else dict(doc.response)
        content["application/json"] = {"schema": schema}
    for media_type, alternative in doc.alternatives.items():
        content[media_type] = {"schema": dict(alternative)}
    answer: dict[str, Any] = {"description": "OK"}
    if content:
        answer["content"] = content
    return {"200": answer}


def _request_body(doc: Doc) -> dict[str, Any] | None:
    content: dict[str, Any] = {}
    if doc.json_body is not None:
        content["application/json"] = {"schema": dict(doc.json_body)}
    elif doc.body is not None:
        content["application/json"] = {"schema": body_schema(doc.body)}
    if doc.form is not None:
        form: Schema = {
            "type": "object",
            "properties": {k: dict(v) for k, v in doc.form.items()},
        }
        if doc.form_required:
            form["required"] = list(doc.form_required)
        content["multipart/form-data"] = {"schema": form}
    if not content:
        return None
    return {"required": doc.body_required, "content": content}


def _parameters(path: str, doc: Doc) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in PATH_PARAM.findall(path)
    ]
    for query in doc.query:
        parameter: dict[str, Any] = {
            "name": query.name,
            "in": "query",
            "required": False,
            "schema": query.json_schema(),
        }
        if query.description:
            parameter["description"] = query.description
        parameters.append(parameter)
    if doc.idempotent:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Retries with the same key (and body) replay the first answer "
                "for 24 hours instead of acting twice.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    return parameters


def _security(operation: Operation) -> list[dict[str, list[str]]]:
    if operation.auth == "required":
        return [{"bearer": []}]
    if operation.auth == "optional":
        return [{}, {"bearer": []}]
    return []


def _operation(path: str, method: str, operation: Operation, operation_id: str) -> dict[str, Any]:
    doc = operation.doc
    errors = [*_pipeline_errors(operation, method), *doc.errors]
    if doc.idempotent:
        errors.append(e.RequestInProgressError)
    body: dict[str, Any] = {
        "operationId": operation_id,
        "summary": doc.summary,
        "tags": [doc.tag or _tag(path)],
        "parameters": _parameters(path, doc),
        "responses": {
            **_success(doc),
            **_error_responses(errors),
            **{status: dict(answer) for status, answer in doc.responses.items()},
        },
        "security": _security(operation),
    }
    if doc.description:
        body["description"] = doc.description
    request_body = _request_body(doc) if method in BODY_METHODS else None
    if request_body is not None:
        body["requestBody"] = request_body
    return body


def _tag(path: str) -> str:
    parts = [p for p in path.split("/") if p and p != "v1"]
    return parts[0] if parts else "pages"


def _socket(route: WebSocketRoute) -> dict[str, Any]:
    return {
        "operationId": "conversation_socket",
        "summary": "Talk over a WebSocket: text and voice turns, streamed replies",
        "description": SOCKET_DESCRIPTION,
        "tags": ["conversations"],
        "parameters": [
            *_parameters(route.path, Doc("")),
            {
                "name": "token",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "A key or client token, for browsers (they cannot set headers).",
            },
        ],
        "responses": {"101": {"description": "Switching Protocols: the socket is open."}},
        "security": [{}, {"bearer": []}],
    }


def build_document(routes: Sequence[BaseRoute], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (those that document themselves)."""
    paths: dict[str, dict[str, Any]] = defaultdict(dict)
    seen_ids: set[str] = set()
    for route in routes:
        if isinstance(route, WebSocketRoute):
            paths[route.path]["get"] = _socket(route)
            continue
        if not isinstance(route, Route):
            continue
        operation = operation_of(route.endpoint)
        if operation is None:
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            name = getattr(route.endpoint, "__name__", "operation")
            operation_id = name if name not in seen_ids else f"{name}_{_slug(route.path)}"
            seen_ids.add(operation_id)
            paths[route.path][method.lower()] = _operation(
                route.path, method, operation, operation_id
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Avatarium API",
            "version": version,
            "description": "Conversational AI avatars: text and speech (MP3 with lip-sync "
            "timings) over REST, Server-Sent Events and WebSocket. Every error is "
            '`{"error": {code, message, details?, request_id}}`; each operation lists '
            "its codes per status.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "paths": dict(paths),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (av_live_… / av_test_…) or, where noted, a "
                    "conversation's client token.",
                }
            },
        },
    }


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")
