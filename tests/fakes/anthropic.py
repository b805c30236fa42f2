"""Anthropic Messages API, streamed.

Documented shapes: ``POST /v1/messages`` with ``x-api-key`` and ``anthropic-version``; named
events ``message_start`` (usage.input_tokens), ``content_block_start``, ``ping``,
``content_block_delta`` (``text_delta``), ``content_block_stop``, ``message_delta``
(``stop_reason``, usage.output_tokens), ``message_stop``. Errors are
``{"type": "error", "error": {"type", "message"}}``; 529 is ``overloaded_error``.
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import FakeState, json_error, malformed, record, sse

API_KEY = "sk-ant-test"


def error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return json_error(
        status, {"type": "error", "error": {"type": kind, "message": message}}, headers
    )


def build(state: FakeState) -> Starlette:
    async def messages(request: Request) -> Response:
        entry, fault = await record(state, request)
        if entry.headers.get("x-api-key") != API_KEY or fault == "401":
            return error(401, "authentication_error", "invalid x-api-key")
        if not entry.headers.get("anthropic-version"):
            return error(400, "invalid_request_error", "anthropic-version header is required")
        if fault == "429":
            return error(
                429,
                "rate_limit_error",
                "Number of requests has exceeded your rate limit",
                {"retry-after": "1"},
            )
        if fault in ("500", "503", "529"):
            kind = "overloaded_error" if fault == "529" else "api_error"
            return error(int(fault), kind, "Overloaded" if fault == "529" else "Internal error")
        if fault == "malformed":
            return malformed()
        body = entry.body
        assert isinstance(body, dict) and body["model"] and body["max_tokens"]
        assert all(m["role"] in ("user", "assistant") for m in body["messages"])
        text = f"Claude heard: {body['messages'][-1]['content']}. Lovely to meet you!"
        words = text.split(" ")
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": body["model"],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 30, "output_tokens": 1},
        }
        events: list[tuple[str | None, str]] = [
            ("message_start", json.dumps({"type": "message_start", "message": message})),
            (
                "content_block_start",
                json.dumps(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    }
                ),
            ),
            ("ping", json.dumps({"type": "ping"})),
        ]
        for index, word in enumerate(words):
            events.append(
                (
                    "content_block_delta",
                    json.dumps(
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {
                                "type": "text_delta",
                                "text": word if index == 0 else " " + word,
                            },
                        }
                    ),
                )
            )
        events += [
            ("content_block_stop", json.dumps({"type": "content_block_stop", "index": 0})),
            (
                "message_delta",
                json.dumps(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": len(words)},
                    }
                ),
            ),
            ("message_stop", json.dumps({"type": "message_stop"})),
        ]
        if fault == "cut":
            return sse(events, cut_after=5)
        if fault == "overloaded-midstream":
            events = [
                *events[:5],
                (
                    "error",
                    json.dumps(
                        {
                            "type": "error",
                            "error": {"type": "overloaded_error", "message": "Overloaded"},
                        }
                    ),
                ),
            ]
        return sse(events)

    return Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])
