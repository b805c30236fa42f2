"""Provider registry: built-ins and plugins register through the same entry-point group.

A plugin package declares, in its own ``pyproject.toml``::

    [project.entry-points."avatarium.providers"]
    myllm = "my_package.module:SPEC"

where ``SPEC`` is a :class:`ProviderSpec`. ``build(settings)`` returns the provider, or
``None`` when it is not configured (for example, its API key is unset).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Literal

from avatarium.core.settings import Settings
from avatarium.providers.embeddings.base import EmbeddingProvider
from avatarium.providers.http import RetryPolicy
from avatarium.providers.llm.base import LLMProvider
from avatarium.providers.llm.cloud import CloudConfig
from avatarium.providers.stt.base import STTProvider
from avatarium.providers.tts.base import TTSProvider

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "avatarium.providers"
# Names the API documents; a documented name without an installed adapter is "not configured".
DOCUMENTED_AI = ("groq", "openai", "gemini", "anthropic", "local")
DOCUMENTED_TTS = ("google", "elevenlabs", "browser", "espeak")
DOCUMENTED_STT = ("whisper", "openai", "groq", "deepgram")
DOCUMENTED_EMBEDDING = ("e5", "openai")
EMBEDDED_AI = "local"
EMBEDDED_TTS = "espeak"
EMBEDDED_STT = "whisper"
EMBEDDED_EMBEDDING = "e5"
DOCUMENTED: dict[str, tuple[str, ...]] = {
    "llm": DOCUMENTED_AI,
    "tts": DOCUMENTED_TTS,
    "stt": DOCUMENTED_STT,
    "embedding": DOCUMENTED_EMBEDDING,
}
Kind = Literal["llm", "tts", "stt", "embedding"]
Provider = LLMProvider | TTSProvider | STTProvider | EmbeddingProvider


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """How to build one provider from settings (``None``: not configured), and, for
    providers that accept a client's own key (BYOK), from an explicit configuration."""

    name: str
    kind: Kind
    build: Callable[[Settings], Provider | None]
    from_config: Callable[[CloudConfig], LLMProvider] | None = None


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_retries=settings.provider_max_retries,
        timeout_s=settings.provider_timeout_s,
        retry_after_cap_s=settings.provider_retry_after_cap_s,
    )


def cloud_config(
    settings: Settings, name: str, *, setting_prefix: str | None = None, require_key: bool = True
) -> CloudConfig | None:
    """``AVATARIUM_<NAME>_API_KEY`` / ``_BASE_URL`` / ``_MODEL``, or None without a key."""
    prefix = setting_prefix or name
    key = getattr(settings, f"{prefix}_api_key", None)
    if require_key and (key is None or not key.get_secret_value()):
        return None
    return CloudConfig(
        name=name,
        api_key=key.get_secret_value() if key is not None else "",
        base_url=getattr(settings, f"{prefix}_base_url"),
        model=getattr(settings, f"{prefix}_model"),
        max_tokens=settings.cloud_max_tokens,
        policy=retry_policy(settings),
    )


class ProviderRegistry:
    """The providers one app can use, built lazily and cached."""

    def __init__(self, settings: Settings, *, load_plugins: bool = True) -> None:
        self._settings = settings
        self._specs: dict[tuple[str, str], ProviderSpec] = {}
        self._built: dict[tuple[str, str], Provider | None] = {}
        if load_plugins:
            for point in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    spec = point.load()
                except Exception:
                    log.exception("provider plugin %s failed to load", point.name)
                    continue
                if isinstance(spec, ProviderSpec):
                    self.register(spec)
                else:
                    log.error("entry point %s is not a ProviderSpec", point.name)

    def register(self, spec: ProviderSpec) -> None:
        """Add or replace a provider."""
        self._specs[(spec.kind, spec.name)] = spec
        self._built.pop((spec.kind, spec.name), None)

    def names(self, kind: Kind) -> list[str]:
        """Every name a client may use: documented ones and registered plugins."""
        documented = DOCUMENTED[kind]
        extra = sorted(name for k, name in self._specs if k == kind and name not in documented)
        return [*documented, *extra]

    def _get(self, kind: Kind, name: str) -> Provider | None:
        key = (kind, name)
        if key not in self._built:
            spec = self._specs.get(key)
            self._built[key] = spec.build(self._settings) if spec else None
        return self._built[key]

    def llm(self, name: str) -> LLMProvider | None:
        """The configured LLM provider ``name``, or ``None`` if not configured."""
        provider = self._get("llm", name)
        assert provider is None or isinstance(provider, LLMProvider)
        return provider

    async def aclose(self) -> None:
        """Close every built provider that holds connections."""
        for provider in self._built.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
        self._built.clear()

    def spec(self, kind: Kind, name: str) -> ProviderSpec | None:
        """The registered spec of a provider, if any."""
        return self._specs.get((kind, name))

    def tts(self, name: str) -> TTSProvider | None:
        """The configured TTS provider ``name``, or ``None`` if not configured."""
        provider = self._get("tts", name)
        assert provider is None or isinstance(provider, TTSProvider)
        return provider

    def stt(self, name: str) -> STTProvider | None:
        """The configured speech-to-text provider ``name``, or ``None`` if not configured."""
        provider = self._get("stt", name)
        assert provider is None or isinstance(provider, STTProvider)
        return provider

    def embedding(self, name: str) -> EmbeddingProvider | None:
        """The configured embedding provider ``name``, or ``None`` if not configured."""
        provider = self._get("embedding", name)
        assert provider is None or isinstance(provider, EmbeddingProvider)
        return provider
