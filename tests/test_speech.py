"""Speech: the eSpeak engine and its timings, and the /v1/tts endpoints."""

from __future__ import annotations

import pytest

from avatarium.providers.tts.espeak import ESPEAK_VOICES, EspeakProvider
from avatarium.speech.mp3 import mp3_duration_ms
from avatarium.speech.visemes import VISEMES, viseme_for, words_from
from tests.support import Api, assert_error


@pytest.mark.parametrize("voice", sorted(ESPEAK_VOICES))
async def test_every_listed_voice_speaks(voice: str) -> None:
    speech = await EspeakProvider().synthesize("Good morning, how are you today?", voice)
    assert speech.duration_ms > 500
    assert abs(mp3_duration_ms(speech.mp3) - speech.duration_ms) <= 0.1 * speech.duration_ms
    assert speech.visemes and speech.words
    assert speech.characters == len("Good morning, how are you today?")


async def test_timings_follow_the_engine_events() -> None:
    text = "Peter picked five purple apples."
    speech = await EspeakProvider().synthesize(text, "en-us")
    assert speech.words is not None and speech.visemes is not None
    assert [w["text"] for w in speech.words] == ["Peter", "picked", "five", "purple", "apples"]
    word_times = [w["time_ms"] for w in speech.words]
    assert word_times == sorted(word_times) and word_times[-1] < speech.duration_ms
    shapes = [v["viseme"] for v in speech.visemes]
    assert set(shapes) <= set(VISEMES)
    assert "PP" in shapes and "FF" in shapes  # the p's and the f of "five"
    ends = [v["time_ms"] + v["duration_ms"] for v in speech.visemes]
    assert all(end <= speech.duration_ms for end in ends)
    for before, after in zip(speech.visemes, speech.visemes[1:], strict=False):
        assert before["time_ms"] + before["duration_ms"] <= after["time_ms"]


def test_viseme_mapping() -> None:
    assert viseme_for("p") == "PP" and viseme_for("'aI") == "aa" and viseme_for("tS") == "CH"
    assert viseme_for("_:") == "sil" and viseme_for("T") == "TH" and viseme_for("u:") == "ou"


async def test_text_to_speech_endpoint(api: Api) -> None:
    key = await api.key()
    response = await api.client.post(
        "/v1/tts", json={"text": "Hello there.", "voice": "en-gb"}, headers=api.auth(key)
    )
    assert response.status_code == 200 and response.headers["content-type"] == "audio/mpeg"
    assert response.headers["x-tts-characters"] == "12"
    duration = int(response.headers["x-audio-duration-ms"])
    assert abs(mp3_duration_ms(response.content) - duration) <= 0.1 * duration
    preview = await api.client.post(
        "/v1/tts/preview", json={"voice": "en-us+m3"}, headers=api.auth(key)
    )
    assert preview.status_code == 200 and len(preview.content) > 1000


async def test_text_to_speech_errors(api: Api) -> None:
    key = await api.key()
    live = await api.key(mode="live")
    cases = [
        ({}, 400, "missing_parameter", "text", "missing", key),
        ({"text": ""}, 400, "invalid_parameter", "text", "empty", key),
        ({"text": "x" * 5001}, 400, "invalid_parameter", "text", "too_long", key),
        ({"text": "hi", "voice": "nobody"}, 400, "invalid_parameter", "voice", "not_allowed", key),
        (
            {"text": "hi", "provider": "browser"},
            400,
            "invalid_parameter",
            "provider",
            "not_allowed",
            key,
        ),
        (
            {"text": "hi", "provider": "google"},
            400,
            "invalid_parameter",
            "provider",
            "not_configured",
            live,
        ),
    ]
    for body, status, code, field, reason, used in cases:
        response = await api.client.post("/v1/tts", json=body, headers=api.auth(used))
        assert_error(response, status, code, field=field, reason=reason)
    assert_error(await api.client.post("/v1/tts", json={"text": "hi"}), 401, "missing_api_key")
    response = await api.client.post("/v1/tts/preview", json={}, headers=api.auth(key))
    assert_error(response, 400, "missing_parameter", field="voice")


async def test_voices_are_public_and_filterable(api: Api) -> None:
    everything = (await api.client.get("/v1/tts/voices")).json()
    ids = {(v["provider"], v["id"]) for v in everything["data"]}
    assert ("espeak", "en-us+f3") in ids and ("browser", "default") in ids
    espeak = (await api.client.get("/v1/tts/voices?provider=espeak")).json()["data"]
    assert len(espeak) == len(ESPEAK_VOICES) and {v["provider"] for v in espeak} == {"espeak"}
    for voice in espeak:
        assert set(voice) >= {"id", "name", "language", "gender", "provider"}
    assert (await api.client.get("/v1/tts/voices?provider=google")).json()["data"] == []
    response = await api.client.get("/v1/tts/voices?provider=morse")
    assert_error(response, 400, "invalid_parameter", field="provider", reason="not_allowed")


async def test_avatars(api: Api) -> None:
    listed = (await api.client.get("/v1/avatars")).json()
    ids = [a["id"] for a in listed["data"]]
    assert "aria-001" in ids and len(ids) >= 4
    aria = (await api.client.get("/v1/avatars/aria-001")).json()
    assert aria["object"] == "avatar" and aria["name"] == "Aria"
    assert aria["voices"]["google"] == "en-US-Neural2-F"
    assert aria["defaults"] == {"ai_provider": "local", "tts_provider": "espeak"}
    model = (await api.client.get("/v1/avatars/aria-001/model")).json()
    assert model["avatar_id"] == "aria-001" and model["format"] == "svg"
    svg = await api.client.get(model["model_url"].removeprefix("http://testserver"))
    assert svg.status_code == 200 and b"<svg" in svg.content
    personalities = {a["personality"] for a in listed["data"]}
    assert len(personalities) == len(ids)  # distinct characters


def test_word_timings_name_whole_words_in_order_despite_espeak_positions() -> None:
    text = "I'm here for a while now, I've said."
    # What eSpeak reported for such a text: "I'm" as one letter, and after "for" a position
    # inside it for "a" (and no event for "while").
    events = [(0, 1, 1), (300, 5, 4), (600, 10, 3), (800, 11, 3), (1100, 22, 3), (1500, 27, 1),
              (1800, 32, 4)]  # fmt: skip
    words = words_from(text, events)
    assert [w["text"] for w in words] == ["I'm", "here", "for", "a", "now", "I've", "said"]
    position = 0
    for word in words:  # in the text's order, each found after the one before
        found = text.find(word["text"], position)
        assert found >= 0, word
        position = found + len(word["text"])
