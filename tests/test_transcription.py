"""Speech to text over REST: the embedded recogniser's accuracy on known sentences, every
upload format, every documented error, spoken sends and their usage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from avatarium.providers.stt.base import Utterance
from tests.conftest import start_api
from tests.support import Api, assert_error
from tests.voice_audio import (
    FORMATS,
    SENTENCES,
    encode,
    silence,
    spoken_corpus,
    spoken_pcm,
    word_errors,
)

QUESTION = "What time does the library open on Sunday?"


def upload(data: bytes, name: str = "file", filename: str = "speech.wav") -> dict[str, Any]:
    return {name: (filename, data, "application/octet-stream")}


async def transcribe(api: Api, key: str, data: bytes, **fields: str) -> httpx.Response:
    return await api.client.post(
        "/v1/transcriptions", files=upload(data), data=fields, headers=api.auth(key)
    )


async def send_audio(
    api: Api, key: str, conversation_id: str, data: bytes, **fields: str
) -> httpx.Response:
    return await api.client.post(
        f"/v1/conversations/{conversation_id}/messages",
        files=upload(data, "audio"),
        data=fields,
        headers=api.auth(key),
    )


@pytest.fixture(scope="module")
async def embedded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """One SQLite app: the recogniser's accuracy does not depend on the database."""
    async for api in start_api("sqlite", tmp_path_factory.mktemp("stt"), None):
        yield api


@pytest.mark.parametrize("path", ["transcriptions", "turns"])
async def test_the_embedded_recogniser_gets_known_sentences_right(embedded: Api, path: str) -> None:
    """Both decoding paths: ``/v1/transcriptions`` (30-second windows, word timings) and
    the one spoken turns take (a window fitted to the speech)."""
    key = await embedded.key()
    principal = await embedded.state.keys.authenticate(key)
    listening = embedded.state.listening
    chain = listening.chain(principal, None)
    errors = total = 0
    misheard = []
    corpus = spoken_corpus()
    for sentence in SENTENCES:
        if path == "transcriptions":
            response = await transcribe(embedded, key, encode(corpus[sentence], "wav"))
            assert response.status_code == 200, response.text
            heard = response.json()["text"]
        else:
            heard = (await listening.recognise(chain, Utterance(corpus[sentence]))).text
        wrong, words = word_errors(sentence, heard)
        errors, total = errors + wrong, total + words
        if wrong:
            misheard.append((sentence, heard))
    assert len(SENTENCES) >= 40
    rate = errors / total
    print(f"{path}: word error rate {rate:.1%} over {len(SENTENCES)} sentences ({total} words)")
    assert rate <= 0.10, f"WER {rate:.1%}; misheard: {misheard}"


@pytest.mark.parametrize("kind", sorted(FORMATS))
async def test_every_documented_format_is_understood(embedded: Api, kind: str) -> None:
    key = await embedded.key()
    pcm = spoken_pcm(QUESTION)
    response = await transcribe(embedded, key, encode(pcm, kind), language="en")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "transcription"
    assert "library" in body["text"].lower()
    assert body["language"] == "en" and body["stt_provider"] == "whisper"
    assert abs(body["duration_ms"] - len(pcm) // 32) <= 60
    words = body["words"]
    assert words and all(w["start_ms"] <= w["end_ms"] for w in words)
    assert words[-1]["end_ms"] <= body["duration_ms"] + 100


async def test_transcription_errors(api: Api) -> None:
    key = await api.key()
    speech = encode(spoken_pcm(QUESTION), "wav")
    cases: list[tuple[httpx.Response, int, str, dict[str, Any]]] = [
        (await transcribe(api, key, b""), 400, "invalid_parameter",
         {"field": "file", "reason": "empty"}),
        (await transcribe(api, key, b"this is not audio at all" * 40), 400, "invalid_parameter",
         {"field": "file", "reason": "unsupported_format"}),
        (await transcribe(api, key, encode(silence(2000), "wav")), 400, "invalid_parameter",
         {"field": "file", "reason": "no_speech"}),
        (await transcribe(api, key, encode(silence(601_000), "flac")), 400,
         "invalid_parameter", {"field": "file", "reason": "too_long"}),
        (await transcribe(api, key, speech, language="en_US!"), 400, "invalid_parameter",
         {"field": "language", "reason": "invalid_type"}),
        (await transcribe(api, key, speech, language="de-DE"), 400, "invalid_parameter",
         {"field": "language", "reason": "not_allowed"}),
        (await transcribe(api, key, speech, provider="nope"), 400, "invalid_parameter",
         {"field": "provider", "reason": "not_allowed"}),
        (await transcribe(api, key, speech, colour="blue"), 400, "invalid_parameter",
         {"field": "colour", "reason": "unknown_field"}),
    ]  # fmt: skip
    for response, status, code, details in cases:
        assert_error(response, status, code, **details)
    missing = await api.client.post(
        "/v1/transcriptions", data={"language": "en"}, files={"other": ("x", b"1")},
        headers=api.auth(key),
    )  # fmt: skip
    assert_error(missing, 400, "invalid_parameter", field="other", reason="unknown_field")
    none = await api.client.post(
        "/v1/transcriptions", files={"language": (None, "en")}, headers=api.auth(key)
    )
    assert_error(none, 400, "missing_parameter", field="file")
    as_json = await api.client.post("/v1/transcriptions", json={}, headers=api.auth(key))
    assert_error(as_json, 400, "invalid_request", reason="unsupported_content_type")
    broken = await api.client.post(
        "/v1/transcriptions",
        content=b"--x\r\nContent-Disposition: form-data\r\n\r\n",
        headers={**api.auth(key), "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert broken.status_code == 400, broken.text
    assert_error(await api.client.post("/v1/transcriptions", files=upload(speech)), 401,
                 "missing_api_key")  # fmt: skip


async def test_an_upload_over_25_mb_is_413(api: Api) -> None:
    key = await api.key()
    limit = 25 * 1024 * 1024
    response = await transcribe(api, key, b"RIFF" + b"\x00" * limit)
    assert_error(response, 413, "request_too_large", limit=limit)
    # A JSON body keeps its own 64 KiB limit on the same endpoint.
    big_json = await api.client.post(
        "/v1/transcriptions", content=b"{" + b" " * 70_000 + b"}",
        headers={**api.auth(key), "Content-Type": "application/json"},
    )  # fmt: skip
    assert_error(big_json, 413, "request_too_large", limit=64 * 1024)


async def test_a_spoken_send_stores_the_transcript_and_its_input(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    pcm = spoken_pcm(QUESTION)
    response = await send_audio(api, key, conversation["id"], encode(pcm, "ogg"), tts="false")
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["role"] == "assistant" and reply["content"]
    assert reply["interrupted"] is False
    messages = (
        await api.client.get(
            f"/v1/conversations/{conversation['id']}/messages", headers=api.auth(key)
        )
    ).json()["data"]
    user = messages[0]
    assert user["id"] == reply["reply_to"]
    assert "library" in user["content"].lower()
    assert user["input"]["type"] == "audio"
    assert user["input"]["stt_provider"] == "whisper"
    assert user["input"]["language"] == "en"
    assert abs(user["input"]["duration_ms"] - len(pcm) // 32) <= 60
    seconds = round(user["input"]["duration_ms"] / 1000, 1)
    assert user["usage"]["stt_seconds"] == seconds
    assert "input" not in reply
    usage = (await api.client.get("/v1/usage", headers=api.auth(key))).json()
    assert usage["stt_seconds"] == seconds and usage["messages"]["used"] == 1
    after = (
        await api.client.get(f"/v1/conversations/{conversation['id']}", headers=api.auth(key))
    ).json()
    assert after["usage"]["stt_seconds"] == seconds and after["message_count"] == 2


async def test_a_spoken_send_that_fails_its_checks_stores_nothing(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    path = f"/v1/conversations/{conversation['id']}"
    speech = encode(spoken_pcm(QUESTION), "wav")
    silent = await send_audio(api, key, conversation["id"], encode(silence(1500), "wav"))
    assert_error(silent, 400, "invalid_parameter", field="audio", reason="no_speech")
    garbage = await send_audio(api, key, conversation["id"], b"\x00\x01" * 300)
    assert_error(garbage, 400, "invalid_parameter", field="audio", reason="unsupported_format")
    both = await send_audio(api, key, conversation["id"], speech, content="hello")
    assert_error(both, 400, "invalid_parameter", field="content", reason="unknown_field")
    bad_flag = await send_audio(api, key, conversation["id"], speech, tts="maybe")
    assert_error(bad_flag, 400, "invalid_parameter", field="tts", reason="invalid_type")
    no_audio = await api.client.post(
        f"{path}/messages", files={"tts": (None, "false")}, headers=api.auth(key)
    )
    assert_error(no_audio, 400, "missing_parameter", field="audio")
    missing = await send_audio(api, key, "conv_doesnotexist0000000", speech)
    assert_error(missing, 404, "conversation_not_found")
    body = (await api.client.get(path, headers=api.auth(key))).json()
    assert body["message_count"] == 0 and body["messages"] == []
    usage = (await api.client.get("/v1/usage", headers=api.auth(key))).json()
    assert usage["messages"]["used"] == 0 and usage["stt_seconds"] == 0.0


async def test_a_spoken_send_is_idempotent(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    speech = encode(spoken_pcm(QUESTION), "wav")
    headers = {**api.auth(key), "Idempotency-Key": "spoken-1"}
    path = f"/v1/conversations/{conversation['id']}/messages"
    first = await api.client.post(
        path, files=upload(speech, "audio"), data={"tts": "false"}, headers=headers
    )
    again = await api.client.post(
        path, files=upload(speech, "audio"), data={"tts": "false"}, headers=headers
    )
    assert first.status_code == again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = await api.client.post(
        path, files=upload(speech + b"\x00\x00", "audio"), data={"tts": "false"}, headers=headers
    )
    assert_error(other, 400, "invalid_request")
    listed = (await api.client.get(path, headers=api.auth(key))).json()["data"]
    assert len(listed) == 2


async def test_a_spoken_send_can_stream(api: Api) -> None:
    from tests.sse import SSEDecoder

    key = await api.key()
    conversation = await api.conversation(key)
    response = await send_audio(
        api, key, conversation["id"], encode(spoken_pcm(QUESTION), "mp3"), stream="true"
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = SSEDecoder().feed(response.content)
    names = [e.type for e in events]
    assert names[0] == "message" and names[-1] == "done", names
    assert "audio" in names
    stored = (
        await api.client.get(
            f"/v1/conversations/{conversation['id']}/messages", headers=api.auth(key)
        )
    ).json()["data"]
    assert stored[0]["input"]["type"] == "audio" and "library" in stored[0]["content"].lower()
    assert stored[1]["id"] == events[-1].json()["id"]
