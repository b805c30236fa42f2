"""The request pipeline every API handler runs through, in the documented check order:

route (Starlette) -> body size -> authentication -> permission -> rate limit -> handler
(parameters, lookups, quota, providers).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from avatarium.api.body import is_multipart, parse_object, read_body
from avatarium.api.errors import error_response
from avatarium.api.multipart import Form, parse_form
from avatarium.api.operation import Doc, Operation
from avatarium.api.state import AppState, state_of
from avatarium.core.errors import (
    AvatariumError,
    MissingApiKeyError,
    PermissionDeniedError,
)
from avatarium.keys.client_tokens import PREFIX as CLIENT_TOKEN_PREFIX
from avatarium.keys.service import Principal
from avatarium.limits.base import Admission

Auth = Literal["required", "optional"]
NOT_A_BEARER_TOKEN = "<not a bearer token>"


@dataclass
class Call:
    """One admitted API call: who makes it, its raw body, and the app's collaborators."""

    request: Request
    state: AppState
    principal: Principal | None
    raw_body: bytes
    response_headers: dict[str, str] = field(default_factory=dict)
    admission: Admission | None = None
    admission_held: bool = False

    @property
    def caller(self) -> Principal:
        """The authenticated principal (only on endpoints that require a key)."""
        assert self.principal is not None
        return self.principal

    def hold_admission(self) -> Callable[[], Awaitable[None]]:
        """Keep the concurrency slot past the handler's return (a streamed response runs
        longer); the returned function gives it back and must be called exactly once."""
        self.admission_held = True
        admission = self.admission

        async def release() -> None:
            if admission is not None:
                await admission.release()

        return release

    @property
    def is_multipart(self) -> bool:
        return is_multipart(self.request.headers.get("content-type"))

    async def form(self, file_limit: int) -> Form:
        """The body as a multipart form (endpoints declared with ``upload_limit``)."""
        return await parse_form(self.raw_body, self.request.headers, file_limit=file_limit)

    def json_object(self, *, optional: bool = False) -> dict[str, Any]:
        return parse_object(
            self.raw_body, self.request.headers.get("content-type"), optional=optional
        )


def bearer_token(connection: HTTPConnection) -> str | None:
    """The bearer token, ``""`` for an empty one, ``None`` when there is no header."""
    header = connection.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        # Another scheme, or a bare key without "Bearer": a credential was sent, but it is
        # not one we accept, so it must fail as invalid, never pass as the key itself.
        return NOT_A_BEARER_TOKEN if header.strip() else ""
    return token.strip()


async def authenticate(request: Request, state: AppState, auth: Auth) -> Principal | None:
    token = bearer_token(request)
    if token is None and auth == "optional":
        return None
    if not token:
        raise MissingApiKeyError("No API key was given. Send 'Authorization: Bearer <key>'.")
    return await authenticate_token(state, token)


async def authenticate_token(state: AppState, token: str) -> Principal:
    """The principal behind an API key or a client token."""
    if token.startswith(CLIENT_TOKEN_PREFIX):
        return await state.client_tokens.authenticate(token)
    return await state.keys.authenticate(token)


def check_permission(principal: Principal, write: bool, conversation_id: str | None) -> None:
    """403 for a read-only key on a write, and for a client token outside its conversation
    (``conversation_id`` is the route's, or None on routes that take no client tokens)."""
    if principal.conversation_id is not None and principal.conversation_id != conversation_id:
        raise PermissionDeniedError(
            "A client token can only read, send to and stream its own conversation.",
            details={"reason": "client_token_scope"},
        )
    if write and principal.scope != "full":
        raise PermissionDeniedError(
            "This key is read-only; it cannot make changes.",
            details={"reason": "read_only_key"},
        )


Handler = Callable[[Call], Awaitable[Response]]


async def _avatar_scope(state: AppState, principal: Principal, request: Request) -> str | None:
    """The client token's conversation when the path's avatar is that conversation's."""
    assert principal.conversation_id is not None
    conversation = await state.conversations.require(principal, principal.conversation_id)
    if conversation.avatar_id == request.path_params.get("avatar_id"):
        return principal.conversation_id
    return None


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (the body has been read by then)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _unless_disconnected(request: Request, work: Awaitable[Response]) -> Response:
    """Run ``work`` in this task, cancelling it the moment the client disconnects: a reply
    nobody will read stops at once, stores nothing and gives its concurrency slot back.
    Only the watcher is a separate task, so the work itself gains no scheduling points."""
    current = asyncio.current_task()
    assert current is not None
    gone = False

    def on_watcher_done(watcher: asyncio.Future[None]) -> None:
        nonlocal gone
        if not watcher.cancelled() and watcher.exception() is None:
            gone = True
            current.cancel()

    watcher = asyncio.ensure_future(_disconnected(request))
    watcher.add_done_callback(on_watcher_done)
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        current.uncancel()
        return Response(status_code=499)  # nobody is listening any more
    finally:
        watcher.cancel()


def endpoint(
    doc: Doc,
    *,
    auth: Auth = "required",
    write: bool = False,
    cancel_on_disconnect: bool = False,
    client_token: bool = False,
    avatar_client_token: bool = False,
    upload_limit: int | None = None,
) -> Callable[[Handler], Any]:
    """Wrap a handler in the pipeline. ``write`` endpoints refuse read-only keys;
    ``cancel_on_disconnect`` stops long work when the client leaves; ``client_token``
    endpoints accept a client token for the conversation in their path;
    ``avatar_client_token`` endpoints accept one for the avatar in their path when it is
    its conversation's avatar (an embedded page draws its face); ``upload_limit``
    endpoints also take a multipart body with a file of up to that many bytes. ``doc`` is
    the route's part of the OpenAPI document (the pipeline's part follows from the rest)."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            state = state_of(request)
            admission: Admission | None = None
            call: Call | None = None
            headers: dict[str, str] = {}
            try:
                raw = (
                    await read_body(request, upload_limit)
                    if request.method in ("POST", "PUT", "PATCH")
                    else b""
                )
                principal = await authenticate(request, state, auth)
                if principal is not None:
                    scoped = request.path_params.get("conversation_id") if client_token else None
                    if avatar_client_token and principal.conversation_id is not None:
                        scoped = await _avatar_scope(state, principal, request)
                    check_permission(principal, write, scoped)
                    admission = await state.gate.admit(principal)
                    headers.update(admission.headers)
                call = Call(request, state, principal, raw, headers, admission)
                if cancel_on_disconnect:
                    response = await _unless_disconnected(request, handler(call))
                else:
                    response = await handler(call)
            except AvatariumError as error:
                response = error_response(error)
            finally:
                if admission is not None and not (call is not None and call.admission_held):
                    await admission.release()
            for name, value in headers.items():
                response.headers.setdefault(name, value)
            return response

        run.operation = Operation(doc, auth=auth, admitted=True)  # type: ignore[attr-defined]
        return run

    return wrap
