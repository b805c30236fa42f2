"""``openai`` embeddings: ``POST {base}/embeddings``.

The documented request is ``{"model", "input": [str], "encoding_format": "float"}`` (at
most 2,048 inputs a request); the answer ``{"object": "list", "data": [{"object":
"embedding", "index", "embedding": [float]}], "model", "usage": {"prompt_tokens",
"total_tokens"}}``, rows in any order (``index`` says whose). Errors are ``{"error":
{"message", "type", "param", "code"}}``, handled with the other OpenAI adapters' retries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avatarium.core.settings import Settings
from avatarium.providers.embeddings.base import Vectors, normalised
from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.http import RetryPolicy, new_client, open_response, read_json
from avatarium.providers.registry import ProviderSpec, retry_policy
from avatarium.providers.transport import OutboundRequest

BATCH = 256  # well inside the 2,048-input and 300,000-token request limits at 800 characters


class OpenAIEmbeddings:
    """An OpenAI-compatible embeddings endpoint."""

    name = "openai"

    def __init__(self, api_key: str, base_url: str, model: str, policy: RetryPolicy) -> None:
        self._api_key = api_key
        self._url = f"{base_url.rstrip('/')}/embeddings"
        self._model = model
        self._policy = policy
        self._client = new_client(policy)
        self.space = f"openai:{model}"

    async def embed(self, texts: Sequence[str], *, query: bool) -> Vectors:
        rows: list[Vectors] = []
        for start in range(0, len(texts), BATCH):
            rows.append(await self._batch(list(texts[start : start + BATCH])))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return normalised(np.concatenate(rows))

    async def _batch(self, batch: list[str]) -> Vectors:
        body = {"model": self._model, "input": batch, "encoding_format": "float"}

        def request() -> OutboundRequest:
            return self._client.build_request(
                "POST", self._url, json=body,
                headers={"Authorization": f"Bearer {self._api_key}"},
            )  # fmt: skip

        async with open_response(self._client, self.name, self._policy, request) as response:
            payload = await read_json(response, self.name)
        try:
            data = sorted(payload["data"], key=lambda row: int(row["index"]))
            matrix = np.asarray([row["embedding"] for row in data], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError(
                FailureCategory.BAD_RESPONSE, self.name, f"unexpected response: {exc!r}"
            ) from exc
        if matrix.ndim != 2 or matrix.shape[0] != len(batch):
            raise ProviderError(
                FailureCategory.BAD_RESPONSE, self.name,
                f"expected {len(batch)} embeddings, got {matrix.shape[0] if matrix.ndim else 0}",
            )  # fmt: skip
        return matrix

    async def aclose(self) -> None:
        await self._client.aclose()


def _build(settings: Settings) -> OpenAIEmbeddings | None:
    key = settings.openai_api_key
    if key is None or not key.get_secret_value():
        return None
    return OpenAIEmbeddings(
        key.get_secret_value(),
        settings.openai_base_url,
        settings.openai_embedding_model,
        retry_policy(settings),
    )


SPEC = ProviderSpec(name="openai", kind="embedding", build=_build)
