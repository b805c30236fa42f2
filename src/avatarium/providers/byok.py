"""Bring your own key: a conversation that names its own provider key, sealed at rest."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

from avatarium.api.validation import Field, check_field
from avatarium.core.errors import InvalidParameterError, MissingParameterError
from avatarium.core.secrets import Sealer
from avatarium.core.settings import Settings
from avatarium.providers.llm.base import LLMProvider
from avatarium.providers.llm.cloud import CloudConfig
from avatarium.providers.registry import ProviderRegistry, cloud_config, retry_policy

FIELDS = [
    Field("provider", str, required=True, not_blank=True, max_length=40),
    Field("api_key", str, required=True, not_blank=True, max_length=1000),
    Field("model", str, not_blank=True, max_length=200),
    Field("base_url", str, not_blank=True, max_length=500),
]
CACHE_SIZE = 128


@dataclass(frozen=True, slots=True)
class ByokKey:
    """A client's own provider credentials."""

    provider: str
    api_key: str
    model: str | None = None
    base_url: str | None = None


def parse_byok(value: dict[str, Any], registry: ProviderRegistry) -> ByokKey:
    """Check a ``byok`` object; field names in errors are ``byok.<field>``."""
    for spec in FIELDS:
        if spec.required and value.get(spec.name) is None:
            raise MissingParameterError(f"byok.{spec.name}")
    for name in value:
        if name not in {spec.name for spec in FIELDS}:
            raise InvalidParameterError(
                f"byok.{name}", "unknown_field", f"byok.{name} is not a recognised field."
            )
    for spec in FIELDS:
        if value.get(spec.name) is not None:
            check_field(spec, value[spec.name], path=f"byok.{spec.name}")
    allowed = byok_providers(registry)
    if value["provider"] not in allowed:
        raise InvalidParameterError(
            "byok.provider",
            "not_allowed",
            f"byok.provider must be one of: {', '.join(allowed)}.",
            allowed=allowed,
        )
    base_url = value.get("base_url")
    if base_url is not None and not base_url.startswith(("https://", "http://")):
        raise InvalidParameterError(
            "byok.base_url", "not_allowed", "byok.base_url must be an http(s) URL."
        )
    return ByokKey(value["provider"], value["api_key"], value.get("model"), base_url)


def byok_providers(registry: ProviderRegistry) -> list[str]:
    """AI providers that can run on a client's key."""
    return [
        name
        for name in registry.names("llm")
        if (spec := registry.spec("llm", name)) is not None and spec.from_config is not None
    ]


def seal(sealer: Sealer, key: ByokKey) -> str:
    return sealer.seal(json.dumps(asdict(key)))


def unseal(sealer: Sealer, token: str) -> ByokKey:
    return ByokKey(**json.loads(sealer.open(token)))


class ByokProviders:
    """Providers built on clients' keys, cached (bounded) so their connections are reused."""

    def __init__(self, registry: ProviderRegistry, settings: Settings) -> None:
        self._registry = registry
        self._settings = settings
        self._cache: OrderedDict[ByokKey, LLMProvider] = OrderedDict()

    async def aclose(self) -> None:
        for provider in self._cache.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
        self._cache.clear()

    def get(self, key: ByokKey) -> LLMProvider:
        provider = self._cache.get(key)
        if provider is not None:
            self._cache.move_to_end(key)
            return provider
        spec = self._registry.spec("llm", key.provider)
        if spec is None or spec.from_config is None:
            raise InvalidParameterError("byok.provider", "not_allowed", "unsupported provider")
        # Defaults (base URL, model) come from the operator's settings for that provider.
        defaults = cloud_config(self._settings, key.provider, require_key=False)
        assert defaults is not None
        provider = spec.from_config(
            CloudConfig(
                name=key.provider,
                api_key=key.api_key,
                base_url=key.base_url or defaults.base_url,
                model=key.model or defaults.model,
                max_tokens=self._settings.cloud_max_tokens,
                policy=retry_policy(self._settings),
            )
        )
        self._cache[key] = provider
        if len(self._cache) > CACHE_SIZE:
            # The evicted provider's idle connections close when it is collected.
            self._cache.popitem(last=False)
        return provider
