"""Gemini API ``models/{model}:streamGenerateContent?alt=sse``.

Documented shapes: the key in ``x-goog-api-key`` (or ``?key=``); ``contents`` with roles
``user``/``model``; each SSE ``data:`` is a ``GenerateContentResponse`` with
``candidates[0].content.parts[].text``; the last carries ``finishReason`` and
``usageMetadata``; no ``[DONE]`` sentinel. A bad key is 400 ``INVALID_ARGUMENT`` with reason
``API_KEY_INVALID``; errors are ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.server import FakeState, google_error, malformed, record, sse

API_KEY = "AIza-test-gemini"


def build(state: FakeState) -> Starlette:
    async def stream(request: Request) -> Response:
        entry, fault = await record(state, request)
        key = entry.headers.get("x-goog-api-key") or entry.query.get("key")
        if key != API_KEY or fault == "401":
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                "API_KEY_INVALID",
            )
        if entry.query.get("alt") != "sse":
            return google_error(400, "INVALID_ARGUMENT", "this fake serves alt=sse only")
        if fault == "429":
            return google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted",
                headers={"retry-after": "1"},
            )
        if fault in ("500", "503"):
            return google_error(int(fault), "UNAVAILABLE", "The model is overloaded.")
        if fault == "malformed":
            return malformed()
        body = entry.body
        assert isinstance(body, dict)
        assert all(c["role"] in ("user", "model") for c in body["contents"])
        last = body["contents"][-1]["parts"][0]["text"]
        text = f"Gemini replies to: {last}. Have a bright day!"
        words = text.split(" ")
        events: list[tuple[str | None, str]] = []
        half = len(words) // 2
        for index, piece in enumerate([" ".join(words[:half]), " " + " ".join(words[half:])]):
            chunk: dict[str, object] = {
                "candidates": [
                    {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
                ],
                "modelVersion": "gemini-fake",
            }
            if index == 1:
                chunk["candidates"][0]["finishReason"] = "STOP"  # type: ignore[index]
                chunk["usageMetadata"] = {
                    "promptTokenCount": 12,
                    "candidatesTokenCount": len(words),
                    "totalTokenCount": 12 + len(words),
                }
            events.append((None, json.dumps(chunk)))
        if fault == "cut":
            return sse(events, cut_after=1)
        return sse(events)

    return Starlette(
        routes=[Route("/v1beta/models/{model}:streamGenerateContent", stream, methods=["POST"])]
    )
