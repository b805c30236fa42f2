"""``deepgram``: Deepgram's streaming speech-to-text WebSocket (``/v1/listen``).

The documented protocol: open ``{base}/v1/listen`` with ``Authorization: Token <key>`` and
the audio's description in the query (``encoding=linear16``, ``sample_rate``,
``channels``, ``model``, ``language``, ``punctuate``, ``smart_format``); send the audio as
binary messages, then the text message ``{"type": "CloseStream"}``. The server answers with
``Results`` messages (``channel.alternatives[0]`` holds ``transcript`` and ``words`` with
``start``/``end`` in seconds and ``punctuated_word``; ``is_final`` marks text that will not
change), then one ``Metadata`` message, and closes. A refused handshake is an HTTP status
(401 for a bad key, 429, 5xx) before any message. ``AVATARIUM_DEEPGRAM_BASE_URL`` is
``wss://api.deepgram.com``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from avatarium.core.settings import Settings
from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.http import RetryPolicy, category_for_status, is_retryable
from avatarium.providers.registry import ProviderSpec, retry_policy
from avatarium.providers.stt.base import SAMPLE_RATE, TimedWord, Transcript, Utterance

SEND_BYTES = 16_000  # half a second of audio per message, as the vendor recommends (20-250 ms+)


class DeepgramProvider:
    """Deepgram over its streaming WebSocket, one connection per utterance."""

    name = "deepgram"
    languages: tuple[str, ...] | None = None

    def __init__(self, api_key: str, base_url: str, model: str, policy: RetryPolicy) -> None:
        self._api_key = api_key
        self._url = f"{base_url.rstrip('/')}/v1/listen"
        self._model = model
        self._policy = policy

    def _params(self, utterance: Utterance) -> dict[str, str]:
        params = {
            "model": self._model,
            "encoding": "linear16",
            "sample_rate": str(SAMPLE_RATE),
            "channels": "1",
            "punctuate": "true",
            "smart_format": "true",
        }
        if utterance.language:
            params["language"] = utterance.language
        return params

    async def transcribe(
        self, utterance: Utterance, *, partial: bool = False, words: bool = False
    ) -> Transcript:
        attempt = 0
        while True:
            try:
                return await asyncio.wait_for(
                    self._once(utterance), self._policy.timeout_s + utterance.duration_ms / 1000
                )
            except ProviderError as error:
                status = error.status if isinstance(error, _StatusError) else None
                attempt += 1
                if attempt > self._policy.max_retries or not is_retryable(error, status):
                    raise
                await asyncio.sleep(self._policy.delay(attempt, error.retry_after))
            except TimeoutError as exc:
                attempt += 1
                if attempt > self._policy.max_retries:
                    raise ProviderError(
                        FailureCategory.TIMEOUT, self.name, f"timed out: {exc!r}"
                    ) from exc
                await asyncio.sleep(self._policy.delay(attempt, None))

    async def _once(self, utterance: Utterance) -> Transcript:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._policy.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.ws_connect(
                    self._url,
                    params=self._params(utterance),
                    headers={"Authorization": f"Token {self._api_key}"},
                    timeout=aiohttp.ClientWSTimeout(ws_receive=self._policy.timeout_s),
                    autoping=True,
                ) as socket,
            ):
                for start in range(0, len(utterance.pcm), SEND_BYTES):
                    await socket.send_bytes(utterance.pcm[start : start + SEND_BYTES])
                await socket.send_str('{"type": "CloseStream"}')
                finals: list[dict[str, Any]] = []
                async for message in socket:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        continue
                    payload = orjson.loads(message.data)
                    if payload.get("type") == "Results" and payload.get("is_final"):
                        finals.append(payload)
                    elif payload.get("type") == "Metadata":
                        break
                return self._transcript(finals, utterance)
        except aiohttp.WSServerHandshakeError as exc:
            raise _StatusError(self.name, exc.status, exc.message) from exc
        except TimeoutError:
            raise
        except (aiohttp.ClientError, OSError) as exc:
            raise ProviderError(
                FailureCategory.UNAVAILABLE, self.name, f"connection: {exc!r}"
            ) from exc
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise ProviderError(
                FailureCategory.BAD_RESPONSE, self.name, "malformed message"
            ) from exc

    def _transcript(self, finals: list[dict[str, Any]], utterance: Utterance) -> Transcript:
        texts: list[str] = []
        timed: list[TimedWord] = []
        try:
            for result in finals:
                best = result["channel"]["alternatives"][0]
                if best.get("transcript"):
                    texts.append(str(best["transcript"]).strip())
                for word in best.get("words") or []:
                    timed.append(
                        TimedWord(
                            str(word.get("punctuated_word") or word["word"]),
                            round(float(word["start"]) * 1000),
                            round(float(word["end"]) * 1000),
                        )
                    )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ProviderError(
                FailureCategory.BAD_RESPONSE, self.name, f"unexpected result: {exc!r}"
            ) from exc
        return Transcript(" ".join(texts).strip(), utterance.language or "en", timed or None)


class _StatusError(ProviderError):
    """A refused handshake, with its HTTP status (decides retrying)."""

    def __init__(self, provider: str, status: int, message: str) -> None:
        super().__init__(category_for_status(status), provider, f"HTTP {status}: {message}")
        self.status = status


def _build(settings: Settings) -> DeepgramProvider | None:
    key = settings.deepgram_api_key
    if key is None or not key.get_secret_value():
        return None
    return DeepgramProvider(
        key.get_secret_value(),
        settings.deepgram_base_url,
        settings.deepgram_model,
        retry_policy(settings),
    )


SPEC = ProviderSpec(name="deepgram", kind="stt", build=_build)
