"""What the cloud speech adapters share: a cached voice list and letter-based visemes."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from avatarium.providers.http import new_client
from avatarium.providers.llm.cloud import CloudConfig
from avatarium.providers.tts.base import Voice

VOICE_CACHE_S = 600.0

# Letters to visemes, for vendors that time characters but not phonemes (approximate).
_DIGRAPHS = {"th": "TH", "sh": "CH", "ch": "CH", "ph": "FF", "ng": "kk"}
_LETTERS = {
    **dict.fromkeys("bmp", "PP"),
    **dict.fromkeys("fv", "FF"),
    **dict.fromkeys("td", "DD"),
    **dict.fromkeys("kgcqx", "kk"),
    **dict.fromkeys("j", "CH"),
    **dict.fromkeys("sz", "SS"),
    **dict.fromkeys("nl", "nn"),
    "r": "RR",
    "a": "aa",
    "e": "E",
    "i": "ih",
    "y": "ih",
    "o": "oh",
    "u": "ou",
    "w": "ou",
    "h": "kk",
}


class VoiceCache:
    """A provider's voice list, fetched on first use and refreshed every ten minutes."""

    def __init__(self, fetch: Callable[[], Awaitable[list[Voice]]]) -> None:
        self._fetch = fetch
        self._voices: list[Voice] = []
        self._fetched_at = float("-inf")

    async def get(self) -> list[Voice]:
        if time.monotonic() - self._fetched_at > VOICE_CACHE_S:
            self._voices = await self._fetch()
            self._fetched_at = time.monotonic()
        return self._voices


def timings_from_characters(
    characters: list[str], starts: list[float], ends: list[float]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(visemes, words) from per-character start and end times in seconds."""
    visemes: list[dict[str, Any]] = []
    words: list[dict[str, Any]] = []
    word, word_start = "", 0.0
    index = 0
    while index < len(characters):
        char = characters[index].lower()
        pair = char + (characters[index + 1].lower() if index + 1 < len(characters) else "")
        width = 2 if pair in _DIGRAPHS else 1
        shape = _DIGRAPHS.get(pair) or _LETTERS.get(char, "sil")
        start_ms = round(starts[index] * 1000)
        end_ms = round(ends[min(index + width, len(ends)) - 1] * 1000)
        if visemes and visemes[-1]["viseme"] == shape:
            visemes[-1]["duration_ms"] = max(0, end_ms - visemes[-1]["time_ms"])
        elif end_ms > start_ms:
            visemes.append({"time_ms": start_ms, "duration_ms": end_ms - start_ms, "viseme": shape})
        for offset in range(width):
            letter = characters[index + offset]
            if letter.isalnum() or (word and letter in "'-"):
                if not word:
                    word_start = starts[index + offset]
                word += letter
            elif word:
                words.append({"time_ms": round(word_start * 1000), "text": word})
                word = ""
        index += width
    if word:
        words.append({"time_ms": round(word_start * 1000), "text": word})
    return visemes, words


class CloudSpeech(ABC):
    """What every cloud speech adapter holds: configuration, a pool, a voice cache."""

    produces_audio = True

    def __init__(self, config: CloudConfig) -> None:
        self.config = config
        self._client = new_client(config.policy)
        self._voices = VoiceCache(self._fetch_voices)

    @abstractmethod
    async def _fetch_voices(self) -> list[Voice]:
        """The vendor's voice list (each vendor lists voices its own way)."""

    async def aclose(self) -> None:
        """Close the connection pool (at shutdown)."""
        await self._client.aclose()

    async def voices(self) -> list[Voice]:
        return await self._voices.get()

    async def has_voice(self, voice_id: str) -> bool:
        return any(v.id == voice_id for v in await self._voices.get())
