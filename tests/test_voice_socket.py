"""Voice over the conversation WebSocket (SPEC section 8): push-to-talk, continuous turns
ended by silence, partial transcripts, barge-in, a failing recogniser, and bad frames."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.registry import ProviderSpec
from avatarium.providers.stt.base import Transcript, Utterance
from tests.asgi_live import LiveSocket
from tests.support import Api, register_held
from tests.test_socket import connect, messages
from tests.voice_audio import silence, spoken_pcm

QUESTION = "What time does the library open on Sunday?"
FOLLOW_UP = "Please tell me about the weather in Paris today."
CHUNK = 3_200  # 100 ms of 16 kHz 16-bit audio


async def stream(socket: LiveSocket, pcm: bytes, *, realtime: bool = False) -> None:
    """Send audio as a microphone would, in 100 ms frames: in real time, or faster (the
    endpointing goes by the audio, not the clock; partial transcripts need the clock)."""
    for start in range(0, len(pcm), CHUNK):
        await socket.send_bytes(pcm[start : start + CHUNK])
        await asyncio.sleep(0.1 if realtime else 0.005)


def kinds(frames: list[dict[str, Any]]) -> list[str]:
    return [f["type"] if f["type"] != "state" else f"state:{f['state']}" for f in frames]


def states(frames: list[dict[str, Any]]) -> list[str]:
    return [f["state"] for f in frames if f["type"] == "state"]


async def test_push_to_talk_turn(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    socket = await connect(api, conversation["id"], key)
    await socket.send({"type": "audio.start", "format": "pcm_s16le", "sample_rate": 16000,
                       "mode": "push_to_talk"})  # fmt: skip
    assert await socket.receive() == {"type": "state", "state": "RECORDING"}
    await stream(socket, spoken_pcm(QUESTION))
    await socket.send({"type": "audio.stop"})
    frames = await socket.until("done", "error")
    assert frames[-1]["type"] == "done", frames[-1]
    frames += await socket.until("state")
    order = [k for k in kinds(frames) if k != "transcript.partial"]
    assert order[:3] == ["state:PROCESSING", "transcript.final", "state:THINKING"], order
    assert order.index("state:SPEAKING") < order.index("done")
    assert order[-1] == "state:IDLE"
    final = next(f for f in frames if f["type"] == "transcript.final")
    assert "library" in final["text"].lower()
    stored = await messages(api, key, conversation["id"])
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[0]["content"] == final["text"]
    assert stored[0]["input"]["type"] == "audio" and stored[0]["input"]["stt_provider"] == "whisper"
    assert stored[1]["id"] == next(f["id"] for f in frames if f["type"] == "done")
    await socket.close()


async def test_continuous_turns_end_on_silence_with_partials(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    socket = await connect(api, conversation["id"], key)
    await socket.send({"type": "audio.start", "format": "pcm_s16le", "sample_rate": 16000,
                       "mode": "continuous"})  # fmt: skip
    assert await socket.receive() == {"type": "state", "state": "LISTENING"}
    finals = []
    for sentence in (QUESTION, FOLLOW_UP):
        # Speech, then the silence that ends the turn; no audio.stop.
        await stream(socket, silence(300) + spoken_pcm(sentence), realtime=True)
        await stream(socket, silence(900))
        frames = await socket.until("done", "error")
        assert frames[-1]["type"] == "done", frames[-1]
        frames += await socket.until("state")
        order = kinds(frames)
        assert order[0] == "state:RECORDING", order
        assert "transcript.partial" in order, order  # a 2.5 s utterance gets a partial
        assert order.index("state:PROCESSING") < order.index("transcript.final")
        assert order.index("transcript.final") < order.index("state:THINKING")
        assert order[-1] == "state:LISTENING"
        finals.append(next(f["text"] for f in frames if f["type"] == "transcript.final"))
        # The user listens to the reply before speaking again (else it is a barge-in).
        await asyncio.sleep(sum(f["duration_ms"] for f in frames if f["type"] == "audio") / 1000)
    assert "library" in finals[0].lower() and "paris" in finals[1].lower()
    stored = await messages(api, key, conversation["id"])
    assert [m["content"] for m in stored if m["role"] == "user"] == finals
    # Silence alone never makes a turn.
    await stream(socket, silence(2000))
    await socket.send({"type": "ping"})
    assert await socket.receive() == {"type": "pong"}
    await socket.send({"type": "audio.stop"})
    assert await socket.receive() == {"type": "state", "state": "IDLE"}
    await socket.close()
    assert len(await messages(api, key, conversation["id"])) == 4


async def test_barge_in_stops_the_reply_and_keeps_what_was_spoken(api: Api) -> None:
    key = await api.key(mode="live")
    llm = register_held(api, ["Hello there. ", "How are you ", "on this fine day?"], 2)
    conversation = await api.conversation(key, ai_provider=llm.name, tts_provider="espeak")
    socket = await connect(api, conversation["id"], key)
    await socket.send({"type": "audio.start", "format": "pcm_s16le", "sample_rate": 16000,
                       "mode": "continuous"})  # fmt: skip
    await stream(socket, spoken_pcm(QUESTION) + silence(900))
    before = await socket.until("audio", "error")
    assert before[-1]["type"] == "audio", before[-1]
    assert before[-1]["text"].strip() == "Hello there."
    await asyncio.wait_for(llm.holding.wait(), 10)  # the model is still writing
    llm.hold_after = None  # the next turn runs through
    await stream(socket, spoken_pcm(FOLLOW_UP))
    frames = await socket.until("interrupted", "done", "error")
    interrupted = frames[-1]
    assert interrupted["type"] == "interrupted", frames
    assert "state:SPEAKING" in kinds(before)
    assert llm.stopped_early
    await stream(socket, silence(900))
    frames = await socket.until("done", "error")
    assert frames[-1]["type"] == "done", frames[-1]
    final = next(f["text"] for f in frames if f["type"] == "transcript.final")
    assert "paris" in final.lower()
    stored = await messages(api, key, conversation["id"])
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    cut = stored[1]
    assert cut["id"] == interrupted["message_id"]
    assert cut["interrupted"] is True and cut["content"] == "Hello there."
    assert cut["audio"] is not None  # the audio that had been sent stays playable
    assert stored[3]["interrupted"] is False and stored[2]["content"] == final
    usage = (await api.client.get("/v1/usage", headers=api.auth(key))).json()
    assert usage["messages"]["used"] == 2  # an interrupted reply counts as a message
    await socket.close()


class FailingRecogniser:
    name = "broken-stt"
    languages = None

    def __init__(self) -> None:
        self.calls = 0

    async def transcribe(
        self, utterance: Utterance, *, partial: bool = False, words: bool = False
    ) -> Transcript:
        self.calls += 1
        raise ProviderError(FailureCategory.UNAVAILABLE, self.name, "HTTP 503: overloaded")


async def test_a_failing_recogniser_sends_an_error_and_keeps_the_socket(api: Api) -> None:
    key = await api.key(mode="live")
    recogniser = FailingRecogniser()
    api.state.providers.register(ProviderSpec("broken-stt", "stt", lambda _s: recogniser))
    conversation = await api.conversation(key, stt_provider="broken-stt", tts_provider="browser")
    socket = await connect(api, conversation["id"], key)
    await socket.send({"type": "audio.start", "format": "pcm_s16le", "sample_rate": 16000})
    assert await socket.receive() == {"type": "state", "state": "RECORDING"}
    await stream(socket, spoken_pcm(QUESTION))
    await socket.send({"type": "audio.stop"})
    frames = await socket.until("error", "done")
    error = frames[-1]["error"]
    assert error["code"] == "stt_provider_error"
    assert error["details"] == {"provider": "broken-stt", "reason": "unavailable",
                                "retryable": True}  # fmt: skip
    assert await socket.receive() == {"type": "state", "state": "IDLE"}
    assert recogniser.calls >= 1
    await socket.send({"type": "message", "content": "Typed instead."})
    assert (await socket.until("done", "error"))[-1]["type"] == "done"
    stored = await messages(api, key, conversation["id"])
    assert [m["content"] for m in stored if m["role"] == "user"] == ["Typed instead."]
    await socket.close()


@pytest.mark.parametrize(
    ("frame", "field", "reason"),
    [({"type": "audio.start", "format": "opus", "sample_rate": 16000}, "format", "not_allowed"),
     ({"type": "audio.start", "format": "pcm_s16le", "sample_rate": 44100}, "sample_rate",
      "out_of_range"),
     ({"type": "audio.start", "format": "pcm_s16le", "sample_rate": 16000, "mode": "always"},
      "mode", "not_allowed"),
     ({"type": "audio.start", "sample_rate": 16000}, "format", "missing")],
)  # fmt: skip
async def test_bad_audio_frames_get_errors(
    api: Api, frame: dict[str, Any], field: str, reason: str
) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    socket = await connect(api, conversation["id"], key)
    await socket.send_bytes(b"\x00\x00" * 100)
    early = await socket.receive()
    assert early is not None and early["error"]["details"]["reason"] == "audio_not_started"
    await socket.send(frame)
    error = await socket.receive()
    assert error is not None and error["type"] == "error"
    assert error["error"]["details"]["field"] == field
    assert error["error"]["details"]["reason"] == reason
    await socket.send({"type": "audio.start", "format": "pcm_s16le", "sample_rate": 16000})
    assert await socket.receive() == {"type": "state", "state": "RECORDING"}
    await socket.send_bytes(b"\x00" * 3)
    odd = await socket.receive()
    assert odd is not None and odd["error"]["details"] == {"field": "audio",
                                                           "reason": "invalid_type"}  # fmt: skip
    await socket.send_bytes(b"\x00" * (64 * 1024 + 2))
    big = await socket.receive()
    assert big is not None and big["error"]["details"]["reason"] == "too_long"
    await socket.send({"type": "audio.stop"})  # silence only: no speech, no turn
    frames = await socket.until("error")
    assert frames[-1]["error"]["details"] == {"field": "audio", "reason": "no_speech"}
    await socket.send({"type": "ping"})
    assert (await socket.until("pong"))[-1] == {"type": "pong"}
    await socket.close()
    assert await messages(api, key, conversation["id"]) == []
