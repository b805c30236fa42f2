"""Voice turns on a conversation's WebSocket: audio in, states out, barge-in.

``audio.start`` opens the microphone in ``push_to_talk`` (the turn is everything until
``audio.stop``) or ``continuous`` mode (voice-activity detection finds where each turn
starts and ends). While the user speaks, the growing utterance is re-decoded every
``AVATARIUM_PARTIAL_INTERVAL_MS`` for ``transcript.partial`` frames. Once speech pauses
(96 ms of silence) the final decode starts, speculatively, so that when the silence window
has passed its transcript is usually ready; speech that resumes makes it stale. A turn whose
speculative transcript already ends a sentence ends after two thirds of the window.

Speech that holds for ``AVATARIUM_BARGE_IN_MS`` while a reply is being written or its audio
is still playing stops the reply (``interrupted``) and becomes the next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from avatarium.core.errors import AvatariumError, InvalidParameterError
from avatarium.listening.endpointing import Cue, Endpointer
from avatarium.listening.service import Heard, no_speech
from avatarium.listening.vad import FrameScorer, shared_model
from avatarium.providers.stt.base import SAMPLE_RATE, Utterance

if TYPE_CHECKING:
    from avatarium.conversations.socket import ConversationSocket

MODES = ("push_to_talk", "continuous")
MAX_FRAME_BYTES = 64 * 1024
MAX_TURN_MS = 60_000  # one spoken turn over the socket (uploads may be 10 minutes)
_TERMINAL = (".", "?", "!")


@dataclass
class _Decode:
    """A final decode started ahead of the end of a turn, for this much audio."""

    length: int
    task: asyncio.Task[Heard | None] = field(init=False)  # None: went stale before it began


class VoiceInput:
    """The microphone side of one socket."""

    def __init__(self, socket: ConversationSocket, mode: str) -> None:
        self._socket = socket
        self._state = socket.app_state
        settings = self._state.settings
        self.mode = mode
        self.open = True
        self._silence_ms = settings.vad_silence_ms
        self._partial_every_ms = settings.partial_interval_ms
        self._endpointer = Endpointer(
            FrameScorer(shared_model()),
            threshold=settings.vad_threshold,
            silence_ms=settings.vad_silence_ms,
            sustain_ms=settings.barge_in_ms,
            max_ms=MAX_TURN_MS,
        )
        self._recording = bytearray()  # push-to-talk: everything since audio.start
        self._partial: asyncio.Task[None] | None = None
        self._partial_at_ms = 0
        self._last_partial = ""
        self._speculative: _Decode | None = None
        self._commits: list[asyncio.Task[None]] = []
        self._commit_lock = asyncio.Lock()
        self._over_reply = False  # the current utterance began while the avatar spoke

    # Frames from the client.

    async def on_audio(self, pcm: bytes) -> None:
        if len(pcm) > MAX_FRAME_BYTES:
            raise InvalidParameterError(
                "audio", "too_long", "An audio frame holds at most 64 KiB.",
                max_length=MAX_FRAME_BYTES,
            )  # fmt: skip
        if len(pcm) % 2:
            raise InvalidParameterError(
                "audio", "invalid_type", "Audio frames hold whole 16-bit samples."
            )
        if self.mode == "push_to_talk":
            if len(self._recording) + len(pcm) > MAX_TURN_MS * SAMPLE_RATE * 2 // 1000:
                await self.stop()
                raise InvalidParameterError(
                    "audio", "too_long", "A spoken turn lasts at most 60 seconds."
                )
            self._recording += pcm
            self._maybe_partial(bytes(self._recording))
            return
        for cue in self._endpointer.feed(pcm):
            await self._on_cue(cue)
        if self._endpointer.speaking:
            if self._endpointer.silence_run_ms == 0:
                self._maybe_partial(self._endpointer.utterance())
            elif self._ends_early():
                utterance = self._endpointer.utterance()
                self._endpointer.reset()
                self._commit(utterance)

    async def stop(self) -> None:
        """``audio.stop``: the microphone closed; what was said becomes a turn."""
        self.open = False
        if self.mode == "push_to_talk":
            utterance, self._recording = bytes(self._recording), bytearray()
            self._commit(utterance, checked=False)
        else:
            if self._endpointer.speaking:
                self._commit(self._endpointer.utterance())
            self._endpointer.reset()
            if not self._commits_running():
                await self.set_state("IDLE")

    async def close(self) -> None:
        """The socket is going away: stop every decode and commit."""
        self.open = False
        tasks: list[asyncio.Task[Any]] = [
            t for t in (self._partial, *self._commits) if t is not None
        ]
        if self._speculative is not None:
            tasks.append(self._speculative.task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # States.

    async def set_state(self, state: str) -> None:
        await self._socket.set_state(state)

    def resting_state(self) -> str:
        """Where the socket rests between turns: listening while the microphone is open."""
        return "LISTENING" if self.open and self.mode == "continuous" else "IDLE"

    # Continuous mode.

    async def _on_cue(self, cue: Cue) -> None:
        if cue is Cue.STARTED:
            self._speculative = None
            self._partial_at_ms = 0
            self._last_partial = ""
            # Speech over a reply is a turn only once it holds (barge-in); until then it
            # may be a cough, or the avatar's own voice coming back through the speakers.
            self._over_reply = self._socket.replying()
            if not self._over_reply:
                await self.set_state("RECORDING")
        elif cue is Cue.SUSTAINED:
            if self._socket.replying():
                await self._socket.barge_in()
            self._over_reply = False
            await self.set_state("RECORDING")
        elif cue is Cue.PAUSED:
            # The user may have finished: decode now, so the transcript is ready (or
            # nearly) when the silence window closes. (PAUSED comes after a few silent
            # frames, not the first: the gaps between words would start a decode each.)
            self._speculate(self._endpointer.utterance())
        elif cue is Cue.RESUMED:
            self._speculative = None
        elif cue is Cue.ENDED:
            for utterance in self._endpointer.ended:
                if not self._over_reply:
                    self._commit(utterance)
            self._endpointer.ended.clear()
            self._over_reply = False

    def _ends_early(self) -> bool:
        spec = self._speculative
        if spec is None or not spec.task.done() or spec.task.cancelled():
            return False
        if spec.task.exception() is not None or spec.length != len(self._endpointer.utterance()):
            return False
        heard = spec.task.result()
        if heard is None:
            return False
        text = heard.text
        return (
            self._endpointer.silence_run_ms * 3 >= self._silence_ms * 2
            and text.endswith(_TERMINAL)
            and len(text.split()) >= 2
        )

    def _speculate(self, utterance: bytes) -> None:
        chain = self._socket.stt_chain(quiet=True)
        if chain is None:
            return
        decode = _Decode(len(utterance))
        decode.task = asyncio.ensure_future(self._speculative_decode(decode, chain, utterance))
        decode.task.add_done_callback(_quiet)  # a stale decode's failure is nobody's business
        self._speculative = decode

    async def _speculative_decode(
        self, decode: _Decode, chain: Any, utterance: bytes
    ) -> Heard | None:
        # One decode at a time per socket: a partial still running goes first, and a
        # decode that went stale meanwhile (the user spoke on) never starts.
        if self._partial is not None and not self._partial.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(self._partial)
        if self._speculative is not decode:
            return None
        listening = self._state.listening
        return await listening.recognise(chain, Utterance(utterance, self._language()))

    # Partial transcripts.

    def _maybe_partial(self, utterance: bytes) -> None:
        heard_ms = len(utterance) * 1000 // (2 * SAMPLE_RATE)
        if heard_ms - self._partial_at_ms < self._partial_every_ms:
            return
        if self._partial is not None and not self._partial.done():
            return
        if self._speculative is not None and not self._speculative.task.done():
            return
        chain = self._socket.stt_chain(quiet=True)
        if chain is None:
            return
        self._partial_at_ms = heard_ms
        self._partial = asyncio.ensure_future(self._send_partial(chain, utterance))

    async def _send_partial(self, chain: Any, utterance: bytes) -> None:
        text = await self._state.listening.partial(chain, utterance)
        if text and text != self._last_partial and self._still_speaking():
            self._last_partial = text
            await self._socket.send({"type": "transcript.partial", "text": text})

    def _still_speaking(self) -> bool:
        if self.mode == "push_to_talk":
            return self.open
        return self._endpointer.speaking

    # The end of a turn.

    def _commits_running(self) -> bool:
        return any(not t.done() for t in self._commits)

    def _commit(self, utterance: bytes, *, checked: bool = True) -> None:
        spec = self._speculative
        self._speculative = None
        ready = spec.task if spec is not None and spec.length == len(utterance) else None
        self._partial_at_ms = 0
        self._last_partial = ""
        task = asyncio.ensure_future(self._finish(utterance, ready, checked))
        self._commits = [t for t in self._commits if not t.done()] + [task]

    async def _finish(
        self, utterance: bytes, ready: asyncio.Task[Heard | None] | None, checked: bool
    ) -> None:
        async with self._commit_lock:  # turns are taken in the order they were spoken
            await self._socket.wait_for_turn()
            try:
                await self.set_state("PROCESSING")
                heard = await self._hear(utterance, ready, checked)
            except AvatariumError as error:
                await self._socket.send_error(error)
                await self.set_state(self.resting_state())
                return
            if heard is None:  # a noise, not words: keep listening
                await self.set_state(self.resting_state())
                return
            await self._socket.send({"type": "transcript.final", "text": heard.text})
            await self._socket.start_voice_turn(heard)

    async def _hear(
        self, utterance: bytes, ready: asyncio.Task[Heard | None] | None, checked: bool
    ) -> Heard | None:
        listening = self._state.listening
        principal = await self._socket.authenticate()
        if not checked and not await asyncio.to_thread(listening.has_speech, utterance):
            raise no_speech("audio")
        chain = self._socket.stt_chain()
        assert chain is not None
        listening.check_language(chain, self._language())
        heard = await ready if ready is not None else None
        if heard is None:
            heard = await listening.recognise(chain, Utterance(utterance, self._language()))
        await listening.count(principal, heard)
        if not heard.text:
            if self.mode == "push_to_talk":
                raise no_speech("audio")
            return None
        return heard

    def _language(self) -> str | None:
        return self._socket.language()


def _quiet(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
