"""``openai`` and ``groq`` speech to text: ``POST {base}/audio/transcriptions``.

The documented request is ``multipart/form-data`` with ``file``, ``model``, optional
``language`` (ISO 639-1) and ``response_format``; with ``verbose_json`` (and
``timestamp_granularities[]=word``) the answer is ``{task, language, duration, text, words:
[{word, start, end}], segments}``, where ``language`` is a lower-case English name
("english"). Errors are ``{"error": {"message", "type", "param", "code"}}``. Groq serves the
same endpoint under ``https://api.groq.com/openai/v1``.
"""

from __future__ import annotations

from typing import Any

from avatarium.core.settings import Settings
from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.http import RetryPolicy, new_client, open_response, read_json
from avatarium.providers.registry import ProviderSpec, retry_policy
from avatarium.providers.stt.base import TimedWord, Transcript, Utterance
from avatarium.providers.transport import FormPart, OutboundRequest

# verbose_json names the language; BCP 47 is what our API speaks.
LANGUAGE_NAMES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it",
    "portuguese": "pt", "dutch": "nl", "polish": "pl", "russian": "ru", "ukrainian": "uk",
    "japanese": "ja", "chinese": "zh", "korean": "ko", "arabic": "ar", "turkish": "tr",
    "hindi": "hi", "swedish": "sv", "danish": "da", "norwegian": "no", "finnish": "fi",
    "czech": "cs", "greek": "el", "hebrew": "he", "indonesian": "id", "vietnamese": "vi",
}  # fmt: skip


def language_code(reported: Any, requested: str | None) -> str:
    """The BCP 47 code of what the vendor reported, else what was asked for, else ``und``."""
    if isinstance(reported, str) and reported:
        lowered = reported.strip().lower()
        if lowered in LANGUAGE_NAMES:
            return LANGUAGE_NAMES[lowered]
        if 2 <= len(lowered) <= 3 and lowered.isalpha():
            return lowered
    return requested or "und"


class OpenAITranscription:
    """An OpenAI-compatible transcription endpoint."""

    languages: tuple[str, ...] | None = None

    def __init__(
        self, name: str, api_key: str, base_url: str, model: str, policy: RetryPolicy
    ) -> None:
        self.name = name
        self._api_key = api_key
        self._url = f"{base_url.rstrip('/')}/audio/transcriptions"
        self._model = model
        self._policy = policy
        self._client = new_client(policy)

    async def transcribe(
        self, utterance: Utterance, *, partial: bool = False, words: bool = False
    ) -> Transcript:
        data, filename, content_type = utterance.as_file()
        parts = [
            FormPart("file", data, filename=filename, content_type=content_type),
            FormPart("model", self._model),
            FormPart("response_format", "verbose_json"),
        ]
        if words:
            parts.append(FormPart("timestamp_granularities[]", "word"))
        if utterance.language:
            # The endpoint takes ISO 639-1: the primary subtag of a BCP 47 tag.
            parts.append(FormPart("language", utterance.language.split("-")[0].lower()))

        def request() -> OutboundRequest:
            return self._client.build_request(
                "POST",
                self._url,
                form=parts,
                headers={"Authorization": f"Bearer {self._api_key}"},
            )

        async with open_response(self._client, self.name, self._policy, request) as response:
            payload = await read_json(response, self.name)
        try:
            text = str(payload["text"]).strip()
            timed = None
            if words and isinstance(payload.get("words"), list):
                timed = [
                    TimedWord(
                        str(w["word"]).strip(),
                        round(float(w["start"]) * 1000),
                        round(float(w["end"]) * 1000),
                    )
                    for w in payload["words"]
                ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError(
                FailureCategory.BAD_RESPONSE, self.name, f"unexpected response: {exc!r}"
            ) from exc
        return Transcript(text, language_code(payload.get("language"), utterance.language), timed)

    async def aclose(self) -> None:
        await self._client.aclose()


def _builder(name: str) -> Any:
    def build(settings: Settings) -> OpenAITranscription | None:
        key = getattr(settings, f"{name}_api_key")
        if key is None or not key.get_secret_value():
            return None
        return OpenAITranscription(
            name,
            key.get_secret_value(),
            getattr(settings, f"{name}_base_url"),
            getattr(settings, f"{name}_stt_model"),
            retry_policy(settings),
        )

    return build


SPEC = ProviderSpec(name="openai", kind="stt", build=_builder("openai"))
GROQ_SPEC = ProviderSpec(name="groq", kind="stt", build=_builder("groq"))
