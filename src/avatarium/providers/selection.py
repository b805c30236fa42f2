"""Choosing the provider that serves a request, with the documented 400s and the test-mode
sandbox (test keys are always served by the embedded engines, at no third-party cost)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from avatarium.core.errors import InvalidParameterError
from avatarium.providers.llm.base import LLMProvider
from avatarium.providers.registry import (
    EMBEDDED_AI,
    EMBEDDED_STT,
    EMBEDDED_TTS,
    Kind,
    ProviderRegistry,
)
from avatarium.providers.stt.base import STTProvider
from avatarium.providers.tts.base import TTSProvider

P = TypeVar("P")
EMBEDDED: dict[str, str] = {"llm": EMBEDDED_AI, "tts": EMBEDDED_TTS, "stt": EMBEDDED_STT}


@dataclass(frozen=True, slots=True)
class Selected(Generic[P]):
    """The provider that will actually serve, and whether it stands in for another."""

    name: str
    provider: P
    sandbox: bool


def _check_name(registry: ProviderRegistry, kind: Kind, name: str, field: str) -> None:
    names = registry.names(kind)
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


def _serving(name: str, mode: str, embedded: str) -> str:
    """The provider that actually serves: the embedded one in the test-mode sandbox, except
    for client-side browser speech, which costs nothing anyway."""
    return embedded if mode == "test" and name != "browser" else name


def _select(
    registry: ProviderRegistry,
    kind: Kind,
    name: str,
    mode: str,
    field: str,
    get: Callable[[str], P | None],
) -> Selected[P]:
    _check_name(registry, kind, name, field)
    serving = _serving(name, mode, EMBEDDED[kind])
    provider = get(serving)
    if provider is None:
        raise _not_configured(field, serving)
    return Selected(serving, provider, sandbox=mode == "test")


def select_llm(
    registry: ProviderRegistry, name: str, mode: str, field: str = "ai_provider"
) -> Selected[LLMProvider]:
    """The LLM provider serving ``name`` for a key of ``mode``, or the documented 400."""
    return _select(registry, "llm", name, mode, field, registry.llm)


def select_tts(
    registry: ProviderRegistry, name: str, mode: str, field: str = "tts_provider"
) -> Selected[TTSProvider]:
    """The speech provider serving ``name`` for a key of ``mode``, or the documented 400."""
    return _select(registry, "tts", name, mode, field, registry.tts)


def select_stt(
    registry: ProviderRegistry, name: str, mode: str, field: str = "stt_provider"
) -> Selected[STTProvider]:
    """The speech-to-text provider serving ``name`` for a key of ``mode``, or the
    documented 400 (test keys are served by the embedded recogniser)."""
    return _select(registry, "stt", name, mode, field, registry.stt)
