"""OpenAI Chat Completions (also Groq's OpenAI-compatible API), streamed and not.

Documented shapes: ``POST {base}/chat/completions`` with ``Authorization: Bearer``; a stream
of ``chat.completion.chunk`` objects as ``data:`` lines, the last choice chunk carrying
``finish_reason``, then (with ``stream_options.include_usage``) a chunk with empty
``choices`` and ``usage``, then ``data: [DONE]``. Errors are
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes import embeddings, transcription
from tests.fakes.server import FakeState, json_error, malformed, record, sse

API_KEY = "sk-test-openai"


def reply_text(body: dict) -> str:  # type: ignore[type-arg]
    last = body["messages"][-1]["content"]
    return f"You said: {last}. That is a fine thing to say!"


def error(
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return json_error(
        status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers
    )


def build(
    state: FakeState, prefix: str = "/v1", api_key: str = API_KEY, groq_usage: bool = False
) -> Starlette:
    async def completions(request: Request) -> Response:
        entry, fault = await record(state, request)
        if entry.headers.get("authorization") != f"Bearer {api_key}" or fault == "401":
            return error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        if fault == "429":
            return error(
                429, "Rate limit reached.", "requests", "rate_limit_exceeded", {"retry-after": "1"}
            )
        if fault in ("500", "503"):
            return error(int(fault), "The server had an error.", "server_error")
        if fault == "malformed":
            return malformed()
        body = entry.body
        assert isinstance(body, dict) and body.get("model") and body.get("messages")
        text = reply_text(body)
        words = text.split(" ")
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
        }
        usage = {
            "prompt_tokens": 21,
            "completion_tokens": len(words),
            "total_tokens": 21 + len(words),
        }
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        events: list[tuple[str | None, str]] = []
        events.append(
            (
                None,
                json.dumps(
                    {
                        **base,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"role": "assistant", "content": ""},
                                "finish_reason": None,
                            }
                        ],
                    }
                ),
            )
        )
        for index, word in enumerate(words):
            piece = word if index == 0 else " " + word
            events.append(
                (
                    None,
                    json.dumps(
                        {
                            **base,
                            "choices": [
                                {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                            ],
                        }
                    ),
                )
            )
        final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        if groq_usage:
            final["x_groq"] = {"id": "req_fake", "usage": usage}
        events.append((None, json.dumps(final)))
        if (body.get("stream_options") or {}).get("include_usage") and not groq_usage:
            events.append((None, json.dumps({**base, "choices": [], "usage": usage})))
        events.append((None, "[DONE]"))
        if fault == "cut":
            return sse(events, cut_after=3)
        if fault == "stall":  # two words of text, then silence
            return sse(events, stall_after=3)
        return sse(events)

    return Starlette(
        routes=[
            Route(f"{prefix}/chat/completions", completions, methods=["POST"]),
            Route(
                f"{prefix}/audio/transcriptions",
                transcription.handler(state, api_key),
                methods=["POST"],
            ),
            Route(f"{prefix}/embeddings", embeddings.handler(state, api_key), methods=["POST"]),
        ]
    )
