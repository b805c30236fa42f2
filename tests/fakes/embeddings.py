"""OpenAI's ``POST {base}/embeddings``, as documented.

The request is JSON ``{"model", "input": str | [str], "encoding_format"?: "float" |
"base64", "dimensions"?}``; at most 2,048 inputs, none empty. The answer is ``{"object":
"list", "data": [{"object": "embedding", "index", "embedding": [float]}], "model", "usage":
{"prompt_tokens", "total_tokens"}}``. Errors are ``{"error": {message, type, param, code}}``.

A fake has no model: it hashes each word into one of ``DIMENSIONS`` buckets (a bag of
words), normalised, so texts that share words are near each other and retrieval still has
something real to rank. It answers rows in reverse order: ``index`` says whose each is.
"""

from __future__ import annotations

import hashlib
import math
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fakes.server import FakeState, json_error, malformed, record

DIMENSIONS = 256
_WORD = re.compile(r"[a-z0-9]+")


def vector(text: str) -> list[float]:
    counts = [0.0] * DIMENSIONS
    for word in _WORD.findall(text.lower()):
        counts[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMENSIONS] += 1.0
    norm = math.sqrt(sum(c * c for c in counts)) or 1.0
    return [c / norm for c in counts]


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    return json_error(
        status, {"error": {"message": message, "type": kind, "param": None, "code": code}}
    )


def handler(state: FakeState, api_key: str):  # type: ignore[no-untyped-def]
    async def embeddings(request: Request) -> Response:
        entry, fault = await record(state, request)
        if entry.headers.get("authorization") != f"Bearer {api_key}" or fault == "401":
            return _error(401, "Incorrect API key provided.", "invalid_request_error",
                          "invalid_api_key")  # fmt: skip
        if fault in ("500", "503"):
            return _error(int(fault), "The server had an error.", "server_error")
        if fault == "malformed":
            return malformed()
        body = entry.body
        if not isinstance(body, dict) or not body.get("model") or "input" not in body:
            return _error(400, "model and input are required.", "invalid_request_error")
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if not inputs or len(inputs) > 2048 or not all(isinstance(i, str) and i for i in inputs):
            return _error(400, "input must be 1 to 2048 non-empty strings.",
                          "invalid_request_error")  # fmt: skip
        if body.get("encoding_format", "float") != "float":
            return _error(400, "This fake answers floats only.", "invalid_request_error")
        rows = [{"object": "embedding", "index": i, "embedding": vector(text)}
                for i, text in enumerate(inputs)]  # fmt: skip
        tokens = sum(len(text.split()) for text in inputs)
        return JSONResponse(
            {"object": "list", "data": rows[::-1], "model": body["model"],
             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        )  # fmt: skip

    return embeddings
