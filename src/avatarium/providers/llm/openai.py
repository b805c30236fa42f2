"""``openai`` and ``groq``: the Chat Completions API, streamed.

Any OpenAI-compatible endpoint (vLLM, the llama.cpp server, Ollama) works through
``AVATARIUM_OPENAI_BASE_URL``, which means what the OpenAI SDK's ``base_url`` means
(``https://api.openai.com/v1``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from avatarium.core.events import TextDelta, Usage
from avatarium.core.settings import Settings
from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.http import open_response, parse_json, sse_events
from avatarium.providers.llm.base import ChatRequest
from avatarium.providers.llm.cloud import CloudLLM
from avatarium.providers.registry import ProviderSpec, cloud_config
from avatarium.providers.transport import OutboundRequest


class OpenAICompatibleProvider(CloudLLM):
    """Streams ``POST {base}/chat/completions`` with usage included in the stream."""

    def _request(self, request: ChatRequest) -> OutboundRequest:
        body = {
            "model": request.model or self.config.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": self.config.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        return self._client.build_request(
            "POST",
            f"{self.config.base_url.rstrip('/')}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {self.config.api_key}"},
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | Usage]:
        finished = False
        tokens = 0
        async with open_response(
            self._client, self.name, self.config.policy, lambda: self._request(request)
        ) as response:
            async for _event, data in sse_events(response, self.name):
                if data.strip() == "[DONE]":
                    # Read on to the end of the body (it ends right here) rather than
                    # breaking off: an unfinished body costs the pooled connection.
                    continue
                chunk = parse_json(data, self.name)
                if "error" in chunk:  # some compatible servers report errors in-stream
                    raise ProviderError(
                        FailureCategory.UNAVAILABLE, self.name, str(chunk["error"])[:300]
                    )
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield TextDelta(text)
                    if choice.get("finish_reason"):
                        finished = True
                usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")
                if usage:
                    tokens = int(usage.get("total_tokens") or 0) or (
                        int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))
                    )
                    request.meter.prompt_tokens = int(usage.get("prompt_tokens", 0))
                    request.meter.completion_tokens = int(usage.get("completion_tokens", 0))
        if not finished:
            # The SDKs end a stream cut mid-way without an error; a reply with no
            # finish_reason is incomplete, and storing it would store half an answer.
            raise ProviderError(
                FailureCategory.UNAVAILABLE, self.name, "the stream ended before the reply did"
            )
        yield Usage(ai_tokens=tokens)


def _build(name: str) -> ProviderSpec:
    def build(settings: Settings) -> OpenAICompatibleProvider | None:
        config = cloud_config(settings, name)
        return OpenAICompatibleProvider(config) if config else None

    return ProviderSpec(name=name, kind="llm", build=build, from_config=OpenAICompatibleProvider)


SPEC = _build("openai")
GROQ_SPEC = _build("groq")
