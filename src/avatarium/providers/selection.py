"""Choosing the provider that serves a request, with the documented 400s and the test-mode
sandbox (test keys are always served by the embedded engines, at no third-party cost)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from avatarium.core.errors import InvalidParameterError
from avatarium.providers.llm.base import LLMProvider
from avatarium.providers.registry import EMBEDDED_AI, EMBEDDED_TTS, ProviderRegistry
from avatarium.providers.tts.base import TTSProvider

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class Selected(Generic[P]):
    """The provider that will actually serve, and whether it stands in for another."""

    name: str
    provider: P
    sandbox: bool


def _check_name(registry: ProviderRegistry, kind: str, name: str, field: str) -> None:
    names = registry.names("llm" if kind == "llm" else "tts")
    if name not in names:
        raise InvalidParameterError(
            field, "not_allowed", f"{field} must be one of: {', '.join(names)}.", allowed=names
        )


def _not_configured(field: str, name: str) -> InvalidParameterError:
    return InvalidParameterError(
        field,
        "not_configured",
        f"The {name} provider is not configured on this server.",
        provider=name,
    )


def select_llm(
    registry: ProviderRegistry, name: str, mode: str, field: str = "ai_provider"
) -> Selected[LLMProvider]:
    _check_name(registry, "llm", name, field)
    if mode == "test":
        embedded = registry.llm(EMBEDDED_AI)
        if embedded is None:
            raise _not_configured(field, EMBEDDED_AI)
        return Selected(EMBEDDED_AI, embedded, sandbox=True)
    provider = registry.llm(name)
    if provider is None:
        raise _not_configured(field, name)
    return Selected(name, provider, sandbox=False)


def select_tts(
    registry: ProviderRegistry, name: str, mode: str, field: str = "tts_provider"
) -> Selected[TTSProvider]:
    _check_name(registry, "tts", name, field)
    if mode == "test" and name != "browser":
        embedded = registry.tts(EMBEDDED_TTS)
        if embedded is None:
            raise _not_configured(field, EMBEDDED_TTS)
        return Selected(EMBEDDED_TTS, embedded, sandbox=True)
    provider = registry.tts(name)
    if provider is None:
        raise _not_configured(field, name)
    return Selected(name, provider, sandbox=mode == "test")
