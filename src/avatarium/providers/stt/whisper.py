"""``whisper``: the embedded speech-to-text provider (Whisper tiny.en on the CPU)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from avatarium.core.settings import Settings
from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.registry import ProviderSpec
from avatarium.providers.stt.base import TimedWord, Transcript, Utterance
from avatarium.providers.stt.whisper_engine import WhisperEngine, bundled_model_dir, shared_engine

# A final transcript searches five beams (about the same time as one on this model, and
# fewer slips on synthetic and accented speech); a partial one, shown while the user is
# still speaking, takes the greedy path.
FINAL_BEAMS = 5
PARTIAL_BEAMS = 1


class WhisperProvider:
    """Whisper in-process; decodes run in a worker thread, one at a time."""

    name = "whisper"
    languages: tuple[str, ...] | None = ("en",)

    def __init__(self, settings: Settings) -> None:
        self._model_dir: Path = settings.whisper_model_dir or bundled_model_dir()
        # A model directory the operator chose is theirs to vouch for.
        self._check_files = settings.whisper_model_dir is None
        self._threads = settings.whisper_threads

    def engine(self) -> WhisperEngine:
        """The loaded model (the first call loads it and checks its files)."""
        return shared_engine(self._model_dir, self._threads, check_files=self._check_files)

    async def transcribe(
        self, utterance: Utterance, *, partial: bool = False, words: bool = False
    ) -> Transcript:
        try:
            decoded = await asyncio.to_thread(
                self.engine().decode,
                utterance.pcm,
                beam_size=PARTIAL_BEAMS if partial else FINAL_BEAMS,
                words=words and not partial,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ProviderError(
                FailureCategory.UNAVAILABLE, self.name, f"the embedded recogniser failed: {exc}"
            ) from exc
        timed = None
        if decoded.words is not None:
            timed = [
                TimedWord(text, round(start * 1000), round(end * 1000))
                for text, start, end in decoded.words
            ]
        return Transcript(decoded.text, "en", timed)


def _build(settings: Settings) -> WhisperProvider:
    return WhisperProvider(settings)


SPEC = ProviderSpec(name="whisper", kind="stt", build=_build)
