"""Cloud speech-to-text providers end to end: the real adapters against a loopback fake of
the OpenAI/Groq transcription endpoint, with its documented request shape and faults,
fallback to the embedded recogniser, and ``stt_provider_error`` when nothing answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import deepgram, openai
from tests.fakes.server import FakeServer
from tests.fakes.transcription import HEARD
from tests.support import Api, assert_error
from tests.test_cloud_providers import cloud_settings, running
from tests.voice_audio import encode, spoken_pcm

SPOKEN = "Please tell me about the weather in Paris today."


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeServer]]:
    servers = {
        "deepgram": FakeServer(deepgram.build).start(),
        "openai": FakeServer(openai.build).start(),
        "groq": FakeServer(
            lambda s: openai.build(s, prefix="/openai/v1", api_key="gsk-test")
        ).start(),
    }
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(autouse=True)
def clean(fakes: dict[str, FakeServer]) -> None:
    HEARD.clear()
    deepgram.HEARD.clear()
    for server in fakes.values():
        server.state.reset()


def _settings(fakes: dict[str, FakeServer], path: Any, **extra: Any) -> Any:
    # Only the fakes this module runs; the others' URLs are never called.
    everything = {name: fakes.get(name, fakes["openai"]) for name in
                  ("openai", "groq", "anthropic", "gemini", "elevenlabs", "google")}  # fmt: skip
    extra = {
        "deepgram_api_key": deepgram.API_KEY,
        "deepgram_base_url": fakes["deepgram"].url.replace("http://", "ws://"),
        **extra,
    }
    return cloud_settings(everything, path, **extra)


@pytest.fixture(scope="module")
async def cloud(
    fakes: dict[str, FakeServer], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    async for api in running(_settings(fakes, tmp_path_factory.mktemp("stt-cloud"))):
        yield api


@pytest.fixture(scope="module")
async def with_fallback(
    fakes: dict[str, FakeServer], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    settings = _settings(
        fakes, tmp_path_factory.mktemp("stt-fallback"), stt_fallback="whisper",
        fallback_cooldown_s=0,
    )  # fmt: skip
    async for api in running(settings):
        yield api


def _audio(name: str = "audio") -> dict[str, Any]:
    return {name: ("question.webm", encode(spoken_pcm(SPOKEN), "webm"), "audio/webm")}


async def _transcribe(api: Api, key: str, **fields: str) -> httpx.Response:
    return await api.client.post(
        "/v1/transcriptions", files=_audio("file"), data=fields, headers=api.auth(key)
    )


@pytest.mark.parametrize(
    ("provider", "model", "path"),
    [("openai", "whisper-1", "/v1/audio/transcriptions"),
     ("groq", "whisper-large-v3-turbo", "/openai/v1/audio/transcriptions")],
)  # fmt: skip
async def test_cloud_transcription_speaks_the_documented_protocol(
    cloud: Api, fakes: dict[str, FakeServer], provider: str, model: str, path: str
) -> None:
    key = await cloud.key(mode="live")
    HEARD.append("Tell me about the weather in Paris.")
    response = await _transcribe(cloud, key, provider=provider, language="en-GB")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == "Tell me about the weather in Paris."
    assert body["stt_provider"] == provider and body["language"] == "en"
    assert [w["text"] for w in body["words"]][:2] == ["Tell", "me"]
    (request,) = fakes[provider].state.requests
    assert request.path == path
    assert request.headers["authorization"].startswith("Bearer ")
    # The upload goes to the vendor as it came, with the documented fields.
    assert request.body["model"] == model
    assert request.body["response_format"] == "verbose_json"
    assert request.body["timestamp_granularities[]"] == "word"
    assert request.body["language"] == "en"
    assert request.body["file"]["filename"] == "question.webm"


async def test_a_test_key_is_served_by_the_embedded_recogniser(
    cloud: Api, fakes: dict[str, FakeServer]
) -> None:
    key = await cloud.key(mode="test")
    response = await _transcribe(cloud, key, provider="openai")
    assert response.status_code == 200, response.text
    assert response.json()["stt_provider"] == "whisper"
    assert "paris" in response.json()["text"].lower()
    assert not fakes["openai"].state.requests


async def test_retries_then_stt_provider_error(cloud: Api, fakes: dict[str, FakeServer]) -> None:
    key = await cloud.key(mode="live")
    fakes["openai"].state.faults.extend(["503", "503"])
    HEARD.append("Recovered after two failures.")
    ok = await _transcribe(cloud, key, provider="openai")
    assert ok.status_code == 200 and ok.json()["text"] == "Recovered after two failures."
    assert len(fakes["openai"].state.requests) == 3
    fakes["openai"].state.faults.extend(["503"] * 3)
    failed = await _transcribe(cloud, key, provider="openai")
    error = assert_error(failed, 503, "stt_provider_error", provider="openai")
    assert error["details"] == {"provider": "openai", "reason": "unavailable", "retryable": True}
    fakes["openai"].state.faults.append("401")
    denied = await _transcribe(cloud, key, provider="openai")
    assert_error(denied, 503, "stt_provider_error", reason="auth_failed", retryable=False)
    fakes["openai"].state.faults.append("malformed")
    garbled = await _transcribe(cloud, key, provider="openai")
    assert_error(garbled, 503, "stt_provider_error", reason="bad_response")
    usage = (await cloud.client.get("/v1/usage", headers=cloud.auth(key))).json()
    assert usage["stt_seconds"] > 0  # the one that succeeded


async def test_a_failing_recogniser_leaves_the_conversation_untouched(
    cloud: Api, fakes: dict[str, FakeServer]
) -> None:
    key = await cloud.key(mode="live")
    conversation = await cloud.conversation(key, stt_provider="groq", ai_provider="openai")
    assert conversation["config"]["stt_provider"] == "groq"
    fakes["groq"].state.faults.extend(["500"] * 3)
    path = f"/v1/conversations/{conversation['id']}"
    response = await cloud.client.post(
        f"{path}/messages", files=_audio(), data={"tts": "false"}, headers=cloud.auth(key)
    )
    assert_error(response, 503, "stt_provider_error", provider="groq")
    after = (await cloud.client.get(path, headers=cloud.auth(key))).json()
    assert after["message_count"] == 0 and after["messages"] == []
    usage = (await cloud.client.get("/v1/usage", headers=cloud.auth(key))).json()
    assert usage["messages"]["used"] == 0 and usage["stt_seconds"] == 0.0
    assert not fakes["openai"].state.requests  # the model was never called


async def test_fallback_to_the_embedded_recogniser(
    with_fallback: Api, fakes: dict[str, FakeServer]
) -> None:
    key = await with_fallback.key(mode="live")
    fakes["openai"].state.faults.extend(["503"] * 3)
    response = await _transcribe(with_fallback, key, provider="openai")
    assert response.status_code == 200, response.text
    assert response.json()["stt_provider"] == "whisper"
    assert "paris" in response.json()["text"].lower()


async def test_deepgram_streams_the_audio_and_reads_its_final_results(
    cloud: Api, fakes: dict[str, FakeServer]
) -> None:
    key = await cloud.key(mode="live")
    deepgram.HEARD.append("Tell me about the weather in Paris.")
    response = await _transcribe(cloud, key, provider="deepgram", language="en-US")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == "Tell me about the weather in Paris."
    assert body["stt_provider"] == "deepgram" and body["language"] == "en-US"
    assert [w["text"] for w in body["words"]][-1] == "Paris."
    (request,) = fakes["deepgram"].state.requests
    assert request.headers["authorization"] == f"Token {deepgram.API_KEY}"
    assert request.query["encoding"] == "linear16" and request.query["sample_rate"] == "16000"
    assert request.query["language"] == "en-US" and request.query["channels"] == "1"
    # The decoded audio went over the socket whole (16 kHz, 16-bit, mono).
    assert abs(request.body["audio_bytes"] / 32 - body["duration_ms"]) <= 1


async def test_deepgram_failures_map_to_stt_provider_error(
    cloud: Api, fakes: dict[str, FakeServer]
) -> None:
    key = await cloud.key(mode="live")
    fakes["deepgram"].state.faults.extend(["503", "503"])
    recovered = await _transcribe(cloud, key, provider="deepgram")
    assert recovered.status_code == 200, recovered.text
    assert len(fakes["deepgram"].state.requests) == 3
    fakes["deepgram"].state.faults.append("401")
    denied = await _transcribe(cloud, key, provider="deepgram")
    assert_error(denied, 503, "stt_provider_error", provider="deepgram", reason="auth_failed",
                 retryable=False)  # fmt: skip
    fakes["deepgram"].state.faults.append("malformed")
    garbled = await _transcribe(cloud, key, provider="deepgram")
    assert_error(garbled, 503, "stt_provider_error", reason="bad_response")


async def test_an_unconfigured_recogniser_is_refused_up_front(
    fakes: dict[str, FakeServer], tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = _settings(fakes, tmp_path_factory.mktemp("no-deepgram"), deepgram_api_key=None)
    async for api in running(settings):
        key = await api.key(mode="live")
        response = await _transcribe(api, key, provider="deepgram")
        assert_error(response, 400, "invalid_parameter", field="provider", reason="not_configured")
        create = await api.client.post(
            "/v1/conversations",
            json={"avatar_id": "aria-001", "stt_provider": "deepgram"},
            headers=api.auth(key),
        )
        assert_error(
            create, 400, "invalid_parameter", field="stt_provider", reason="not_configured"
        )
        bad_language = await api.client.post(
            "/v1/conversations",
            json={"avatar_id": "aria-001", "language": "not a tag"},
            headers=api.auth(key),
        )
        assert_error(bad_language, 400, "invalid_parameter", field="language")
