"""``anthropic``: the Messages API, streamed (named Server-Sent Events).

``AVATARIUM_ANTHROPIC_BASE_URL`` means what the Anthropic SDK's ``base_url`` means
(``https://api.anthropic.com``); requests go to ``{base}/v1/messages``.
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

API_VERSION = "2023-06-01"
# Anthropic's error types that a retry can fix (529 is "overloaded_error").
RETRYABLE_ERRORS = {"overloaded_error", "api_error", "rate_limit_error"}


class AnthropicProvider(CloudLLM):
    """Streams ``POST {base}/v1/messages``."""

    def _request(self, request: ChatRequest) -> OutboundRequest:
        system, turns = split_system(request.messages)
        body: dict[str, object] = {
            "model": request.model or self.config.model,
            "max_tokens": self.config.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in turns],
            "stream": True,
        }
        if system:
            body["system"] = system
        return self._client.build_request(
            "POST",
            f"{self.config.base_url.rstrip('/')}/v1/messages",
            json=body,
            headers={"x-api-key": self.config.api_key, "anthropic-version": API_VERSION},
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | Usage]:
        input_tokens = output_tokens = 0
        stopped = False
        async with open_response(
            self._client, self.name, self.config.policy, lambda: self._request(request)
        ) as response:
            async for event, data in sse_events(response, self.name):
                if event == "ping":
                    continue
                payload = parse_json(data, self.name)
                kind = payload.get("type", event)
                if kind == "message_start":
                    usage = (payload.get("message") or {}).get("usage") or {}
                    input_tokens = int(usage.get("input_tokens", 0))
                    output_tokens = int(usage.get("output_tokens", 0))
                    request.meter.prompt_tokens = input_tokens
                elif kind == "content_block_delta":
                    delta = payload.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        yield TextDelta(delta["text"])
                elif kind == "message_delta":
                    usage = payload.get("usage") or {}
                    output_tokens = int(usage.get("output_tokens", output_tokens))
                    request.meter.completion_tokens = output_tokens
                elif kind == "message_stop":
                    stopped = True  # read on to the body's end to keep the connection
                elif kind == "error":
                    error = payload.get("error") or {}
                    category = (
                        FailureCategory.UNAVAILABLE
                        if error.get("type") in RETRYABLE_ERRORS
                        else FailureCategory.BAD_RESPONSE
                    )
                    raise ProviderError(category, self.name, str(error.get("message"))[:300])
        if not stopped:
            raise ProviderError(
                FailureCategory.UNAVAILABLE, self.name, "the stream ended before message_stop"
            )
        yield Usage(ai_tokens=input_tokens + output_tokens)


def _build(settings: Settings) -> AnthropicProvider | None:
    config = cloud_config(settings, "anthropic")
    return AnthropicProvider(config) if config else None


SPEC = ProviderSpec(name="anthropic", kind="llm", build=_build, from_config=AnthropicProvider)
