"""``/v1/webhooks``: an account's webhook endpoints and their deliveries (SPEC section 10)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from avatarium.api.endpoint import Call, endpoint
from avatarium.api.operation import Doc
from avatarium.api.validation import LIMIT, STARTING_AFTER, Field, Query, check_field, validate
from avatarium.api.wire_schemas import deleted, list_of, ref
from avatarium.core.errors import InvalidParameterError, WebhookNotFoundError
from avatarium.core.wire import WireJSONResponse as JSONResponse
from avatarium.webhooks.events import EVENT_TYPES
from avatarium.webhooks.service import WebhookChanges
from avatarium.webhooks.signing import secret_key
from avatarium.webhooks.targets import MAX_URL

EVENTS_SCHEMA = {
    "minItems": 1,
    "items": {"type": "string", "enum": ["*", *EVENT_TYPES]},
    "description": 'The event types to receive, or ["*"] for all.',
}
EVENT_ID = Query("event_id", description="Only the attempts at this event.")
CREATE_FIELDS = [
    Field("url", str, required=True, not_blank=True, max_length=MAX_URL),
    Field("events", list, required=True, schema=EVENTS_SCHEMA),
    Field("description", str, max_length=500),
    Field("secret", str, not_blank=True, max_length=200),
]
UPDATE_FIELDS = [
    Field("url", str, not_blank=True, max_length=MAX_URL),
    Field("events", list, schema=EVENTS_SCHEMA),
    Field("description", str, max_length=500),
    Field("enabled", bool),
]


def parse_events(value: list[Any]) -> list[str]:
    """A non-empty list of known event types, or ``["*"]``; duplicates dropped."""
    if not value:
        raise InvalidParameterError("events", "empty", "events must name at least one event.")
    allowed = ["*", *EVENT_TYPES]
    chosen: list[str] = []
    for index, item in enumerate(value):
        check_field(Field("events", str, allowed=allowed), item, path=f"events[{index}]")
        if item not in chosen:
            chosen.append(item)
    if "*" in chosen and len(chosen) > 1:
        raise InvalidParameterError(
            "events", "not_allowed", 'events is either ["*"] or a list of event types.'
        )
    return chosen


def _page_params(call: Call) -> tuple[int, str | None]:
    params = call.request.query_params
    return LIMIT.read(params), STARTING_AFTER.read(params)


@endpoint(
    Doc(
        "Register an endpoint for events; its signing secret is shown once",
        body=CREATE_FIELDS,
        response="Webhook",
    ),
    write=True,
)
async def create_webhook(call: Call) -> Response:
    fields = validate(call.json_object(), CREATE_FIELDS)
    events = parse_events(fields["events"])
    secret = fields.get("secret")
    if secret is not None and secret_key(secret) is None:
        raise InvalidParameterError(
            "secret",
            "not_allowed",
            "secret must be whsec_ followed by 24 to 64 bytes in base64; omit it to get one.",
        )
    return JSONResponse(
        await call.state.webhooks.create(
            call.caller,
            url=fields["url"],
            events=events,
            description=fields.get("description"),
            secret=secret,
        )
    )


@endpoint(
    Doc(
        "The account's webhook endpoints",
        query=[LIMIT, STARTING_AFTER],
        response=list_of(ref("Webhook")),
    )
)
async def list_webhooks(call: Call) -> Response:
    limit, starting_after = _page_params(call)
    return JSONResponse(
        await call.state.webhooks.list_webhooks(
            call.caller, limit=limit, starting_after=starting_after
        )
    )


@endpoint(Doc("One webhook endpoint", response="Webhook", errors=[WebhookNotFoundError]))
async def get_webhook(call: Call) -> Response:
    webhook_id = call.request.path_params["webhook_id"]
    return JSONResponse(await call.state.webhooks.get(call.caller, webhook_id))


@endpoint(
    Doc(
        "Change a webhook endpoint (enable, disable, its URL or events)",
        body=UPDATE_FIELDS,
        response="Webhook",
        errors=[WebhookNotFoundError],
    ),
    write=True,
)
async def update_webhook(call: Call) -> Response:
    webhook_id = call.request.path_params["webhook_id"]
    body = call.json_object()
    fields = validate(body, UPDATE_FIELDS)
    changes = WebhookChanges(
        url=fields.get("url"),
        events=parse_events(fields["events"]) if "events" in fields else None,
        description=fields.get("description"),
        clear_description="description" in body and body["description"] is None,
        enabled=fields.get("enabled"),
    )
    return JSONResponse(await call.state.webhooks.update(call.caller, webhook_id, changes))


@endpoint(
    Doc("Delete a webhook endpoint", response=deleted("webhook"), errors=[WebhookNotFoundError]),
    write=True,
)
async def delete_webhook(call: Call) -> Response:
    webhook_id = call.request.path_params["webhook_id"]
    return JSONResponse(await call.state.webhooks.delete(call.caller, webhook_id))


@endpoint(
    Doc(
        "Send a test event to an endpoint",
        body=[],
        body_required=False,
        response="WebhookQueued",
        errors=[WebhookNotFoundError],
    ),
    write=True,
)
async def test_webhook(call: Call) -> Response:
    call.json_object(optional=True)
    webhook_id = call.request.path_params["webhook_id"]
    return JSONResponse(await call.state.webhooks.send_test(call.caller, webhook_id))


@endpoint(
    Doc(
        "An endpoint's delivery attempts, newest first",
        query=[LIMIT, STARTING_AFTER, EVENT_ID],
        response=list_of(ref("WebhookDelivery")),
        errors=[WebhookNotFoundError],
    ),
)
async def list_deliveries(call: Call) -> Response:
    webhook_id = call.request.path_params["webhook_id"]
    limit, starting_after = _page_params(call)
    return JSONResponse(
        await call.state.webhooks.deliveries(
            call.caller,
            webhook_id,
            limit=limit,
            starting_after=starting_after,
            event_id=EVENT_ID.read(call.request.query_params),
        )
    )


@endpoint(
    Doc(
        "Deliver an event again, now",
        body=[],
        body_required=False,
        response="WebhookQueued",
        errors=[WebhookNotFoundError],
    ),
    write=True,
)
async def retry_delivery(call: Call) -> Response:
    call.json_object(optional=True)
    params = call.request.path_params
    return JSONResponse(
        await call.state.webhooks.retry(call.caller, params["webhook_id"], params["delivery_id"])
    )


routes = [
    Route("/v1/webhooks", create_webhook, methods=["POST"]),
    Route("/v1/webhooks", list_webhooks, methods=["GET"]),
    Route("/v1/webhooks/{webhook_id}", get_webhook, methods=["GET"]),
    Route("/v1/webhooks/{webhook_id}", update_webhook, methods=["PATCH"]),
    Route("/v1/webhooks/{webhook_id}", delete_webhook, methods=["DELETE"]),
    Route("/v1/webhooks/{webhook_id}/test", test_webhook, methods=["POST"]),
    Route("/v1/webhooks/{webhook_id}/deliveries", list_deliveries, methods=["GET"]),
    Route(
        "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
        retry_delivery,
        methods=["POST"],
    ),
]
