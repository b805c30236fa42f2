"""Where an utterance starts and ends in a live stream of 16 kHz PCM (continuous mode).

Frames of 32 ms are scored by Silero VAD. Speech starts after ``start_ms`` of speech frames
in a row (a click or a breath is not a turn), and the utterance keeps ``preroll_ms`` from
before that, so its first syllable is not clipped. Once speaking, a frame counts as speech
down to a lower threshold (hysteresis: the tail of a word does not end the turn), and the
turn ends after ``silence_ms`` of frames below it. The utterance handed on stops at the end
of its last speech frame: trailing silence is never transcribed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from avatarium.listening.vad import FRAME_MS, FRAME_SAMPLES, FrameScorer

FRAME_BYTES = FRAME_SAMPLES * 2
HYSTERESIS = 0.15


class Cue(Enum):
    """What the last audio meant."""

    STARTED = "started"  # speech began: a new utterance
    SUSTAINED = "sustained"  # the utterance has held speech for ``sustain_ms`` (barge-in)
    PAUSED = "paused"  # ``pause_ms`` of silence after speech (maybe the end of the turn)
    RESUMED = "resumed"  # speech again before the turn ended
    ENDED = "ended"  # ``silence_ms`` of silence: the turn is over


@dataclass
class Endpointer:
    """Feeds on PCM, reports cues; ``utterance()`` is the speech so far."""

    scorer: FrameScorer
    threshold: float = 0.5
    silence_ms: int = 600
    start_ms: int = 96
    sustain_ms: int = 250
    pause_ms: int = 96  # shorter gaps are between words
    preroll_ms: int = 320
    max_ms: int = 60_000  # a turn this long ends, pause or not
    speaking: bool = False
    silence_run_ms: int = 0
    voiced_ms: int = 0
    _audio: bytearray = field(default_factory=bytearray)
    _voiced_until: int = 0
    _speech_run_ms: int = 0
    _pending: bytes = b""
    _preroll: deque[bytes] = field(default_factory=deque)
    _sustained: bool = False
    ended: list[bytes] = field(default_factory=list)  # finished utterances, for the caller

    def utterance(self) -> bytes:
        """The current utterance up to its last speech frame."""
        return bytes(self._audio[: self._voiced_until])

    @property
    def utterance_ms(self) -> int:
        return self._voiced_until * 1000 // (2 * 16_000)

    def reset(self) -> None:
        """Drop the current utterance (it has been handed on, or abandoned); finished
        utterances stay in ``ended`` until the caller takes them."""
        self.speaking = False
        self._audio = bytearray()
        self._voiced_until = 0
        self.silence_run_ms = self.voiced_ms = self._speech_run_ms = 0
        self._sustained = False
        self._preroll.clear()

    def feed(self, pcm: bytes) -> list[Cue]:
        data = self._pending + pcm
        whole = len(data) // FRAME_BYTES * FRAME_BYTES
        self._pending = data[whole:]
        if not whole:
            return []
        frames = [data[i : i + FRAME_BYTES] for i in range(0, whole, FRAME_BYTES)]
        scores = self.scorer.feed(data[:whole])
        cues: list[Cue] = []
        for frame, score in zip(frames, scores, strict=True):
            cue = self._step(frame, float(score))
            if cue is not None:
                cues.append(cue)
        return cues

    def _step(self, frame: bytes, score: float) -> Cue | None:
        if not self.speaking:
            self._preroll.append(frame)
            while len(self._preroll) * FRAME_MS > self.preroll_ms:
                self._preroll.popleft()
            self._speech_run_ms = self._speech_run_ms + FRAME_MS if score >= self.threshold else 0
            if self._speech_run_ms < self.start_ms:
                return None
            self.speaking = True
            self._audio = bytearray(b"".join(self._preroll))
            self._preroll.clear()
            self._voiced_until = len(self._audio)
            self.voiced_ms = self._speech_run_ms
            self.silence_run_ms = 0
            return Cue.STARTED
        self._audio += frame
        if score >= self.threshold - HYSTERESIS:
            resumed = self.silence_run_ms > 0
            self.silence_run_ms = 0
            self._voiced_until = len(self._audio)
            self.voiced_ms += FRAME_MS
            if not self._sustained and self.voiced_ms >= self.sustain_ms:
                self._sustained = True
                return Cue.SUSTAINED
            if self.utterance_ms >= self.max_ms:
                return self._end()
            return Cue.RESUMED if resumed else None
        self.silence_run_ms += FRAME_MS
        if self.silence_run_ms >= self.silence_ms:
            return self._end()
        paused = self.silence_run_ms - FRAME_MS < self.pause_ms <= self.silence_run_ms
        return Cue.PAUSED if paused else None

    def _end(self) -> Cue:
        # Kept aside: later frames of the same batch may start the next utterance.
        self.ended.append(self.utterance())
        self.reset()
        return Cue.ENDED
