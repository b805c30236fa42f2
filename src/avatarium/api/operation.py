"""What an HTTP route documents about itself: the facts the OpenAPI document is built from.

The pipeline (:func:`avatarium.api.endpoint.endpoint`) attaches an :class:`Operation` to
every handler it wraps, so authentication, permissions, limits and body handling come from
the same arguments that switch them on; the handler adds the rest in a :class:`Doc` (its
body fields and query parameters are the very specs it validates with).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from avatarium.api.validation import Field, Query
from avatarium.core.errors import AvatariumError

F = TypeVar("F", bound=Callable[..., Any])
BINARY: Mapping[str, Any] = {"type": "string", "format": "binary"}  # a file part of a form


@dataclass(frozen=True)
class Doc:
    """A route's own part of its documentation."""

    summary: str
    description: str = ""
    # The JSON body's fields (the ones the handler passes to ``validate``).
    body: Sequence[Field] | None = None
    body_required: bool = True
    # A JSON body the field list cannot say (one of several shapes); replaces ``body``.
    json_body: Mapping[str, Any] | None = None
    # A multipart/form-data alternative: field name -> JSON Schema (files are binary).
    form: Mapping[str, Mapping[str, Any]] | None = None
    form_required: Sequence[str] = ()
    query: Sequence[Query] = ()
    # The 200 response: a schema name under components/schemas, or an inline schema.
    response: str | Mapping[str, Any] | None = None
    # Other media types the 200 may take (e.g. text/event-stream), name -> schema.
    alternatives: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    errors: Sequence[type[AvatariumError]] = ()
    tag: str | None = None
    # Further responses, as OpenAPI writes them (status -> response object).
    responses: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Takes an Idempotency-Key header (and so may answer 409 request_in_progress).
    idempotent: bool = False


@dataclass(frozen=True)
class Operation:
    """Everything the document says about one handler."""

    doc: Doc
    auth: Literal["required", "optional", "none"] = "none"
    # Runs the API pipeline (body limits, rate limits, the error envelope on failures).
    admitted: bool = False


def documented(doc: Doc) -> Callable[[F], F]:
    """Attach ``doc`` to a handler outside the API pipeline (pages, health checks)."""

    def attach(handler: F) -> F:
        handler.operation = Operation(doc)  # type: ignore[attr-defined]
        return handler

    return attach


def operation_of(handler: object) -> Operation | None:
    """The operation a handler documents, if it documents one."""
    found = getattr(handler, "operation", None)
    return found if isinstance(found, Operation) else None
