"""``gemini``: the Gemini API's ``streamGenerateContent`` with ``alt=sse``.

``AVATARIUM_GEMINI_BASE_URL`` is the API host (``https://generativelanguage.googleapis.com``);
requests go to ``{base}/v1beta/models/{model}:streamGenerateContent?alt=sse``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from avatarium.core.events import TextDelta, Usage
from avatarium.core.settings import Settings
from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.http import open_response, parse_json, sse_events
from avatarium.providers.llm.base import ChatRequest
from avatarium.providers.llm.cloud import CloudLLM, split_system
from avatarium.providers.registry import ProviderSpec, cloud_config
from avatarium.providers.transport import OutboundRequest

DONE_REASONS = {"STOP", "MAX_TOKENS"}


def classify(status: int, body: bytes) -> FailureCategory | None:
    """Gemini answers a bad API key with 400 INVALID_ARGUMENT / API_KEY_INVALID."""
    if status == 400 and b"API_KEY_INVALID" in body:
        return FailureCategory.AUTH_FAILED
    return None


class GeminiProvider(CloudLLM):
    """Streams ``models/{model}:streamGenerateContent``."""

    def _request(self, request: ChatRequest) -> OutboundRequest:
        system, turns = split_system(request.messages)
        body: dict[str, object] = {
            "contents": [
                {
                    "role": "model" if m.role == "assistant" else "user",
                    "parts": [{"text": m.content}],
                }
                for m in turns
            ],
            "generationConfig": {"maxOutputTokens": self.config.max_tokens},
        }
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        model = request.model or self.config.model
        return self._client.build_request(
            "POST",
            f"{self.config.base_url.rstrip('/')}/v1beta/models/{model}:streamGenerateContent",
            params={"alt": "sse"},
            json=body,
            headers={"x-goog-api-key": self.config.api_key},
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | Usage]:
        finished = False
        tokens = 0
        async with open_response(
            self._client, self.name, self.config.policy, lambda: self._request(request), classify
        ) as response:
            async for _event, data in sse_events(response, self.name):
                chunk = parse_json(data, self.name)
                if "error" in chunk:
                    raise ProviderError(
                        FailureCategory.UNAVAILABLE, self.name, str(chunk["error"])[:300]
                    )
                for candidate in chunk.get("candidates") or []:
                    for part in (candidate.get("content") or {}).get("parts") or []:
                        if part.get("text"):
                            yield TextDelta(part["text"])
                    reason = candidate.get("finishReason")
                    if reason in DONE_REASONS:
                        finished = True
                    elif reason:  # SAFETY, RECITATION, ...: the model refused to finish
                        raise ProviderError(
                            FailureCategory.BAD_RESPONSE, self.name, f"finishReason {reason}"
                        )
                usage = chunk.get("usageMetadata") or {}
                if usage.get("totalTokenCount"):
                    tokens = int(usage["totalTokenCount"])
                if "promptTokenCount" in usage:  # Gemini reports usage so far in every chunk
                    request.meter.prompt_tokens = int(usage["promptTokenCount"])
                if "candidatesTokenCount" in usage:
                    request.meter.completion_tokens = int(usage["candidatesTokenCount"])
        if not finished:
            raise ProviderError(
                FailureCategory.UNAVAILABLE, self.name, "the stream ended before the reply did"
            )
        yield Usage(ai_tokens=tokens)


def _build(settings: Settings) -> GeminiProvider | None:
    config = cloud_config(settings, "gemini")
    return GeminiProvider(config) if config else None


SPEC = ProviderSpec(name="gemini", kind="llm", build=_build, from_config=GeminiProvider)
