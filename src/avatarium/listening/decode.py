"""Uploaded audio to 16 kHz mono 16-bit PCM, with PyAV (FFmpeg's demuxers and decoders as a
library: no subprocess, no temporary files).

Only the containers the API documents are opened — WAV, WebM/Matroska, Ogg, MP3, FLAC —
which keeps the rest of FFmpeg's demuxers (a long history of parser bugs) out of reach of
uploads. Decoding stops as soon as the audio passes the length limit, so a ten-hour file
costs no more than a ten-minute one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from avatarium.providers.stt.base import SAMPLE_RATE

MAX_AUDIO_BYTES = 25 * 1024 * 1024
MAX_AUDIO_MS = 10 * 60 * 1000
# FFmpeg's demuxer names for the documented formats ("matroska,webm" is one demuxer).
ALLOWED_DEMUXERS = {"wav", "matroska", "webm", "ogg", "mp3", "flac"}
FORMATS = "WAV, WebM/Opus, Ogg/Opus, MP3 or FLAC"


class AudioInputError(Exception):
    """The upload cannot be used; ``reason`` is the documented one."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    """Mono 16 kHz s16le samples, and what the upload was."""

    pcm: bytes
    container: str

    @property
    def duration_ms(self) -> int:
        return len(self.pcm) * 1000 // (2 * SAMPLE_RATE)


def _demuxer_names(container: av.container.InputContainer) -> set[str]:
    return set(container.format.name.split(","))


def decode_audio(data: bytes, *, max_ms: int = MAX_AUDIO_MS) -> DecodedAudio:
    """Decode an upload, or raise AudioInputError (``empty``, ``unsupported_format``,
    ``too_long``). Blocking: run it in a worker thread."""
    if not data:
        raise AudioInputError("empty", "The audio file is empty.")
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise AudioInputError(
            "unsupported_format", f"The audio could not be read; send {FORMATS}."
        ) from exc
    try:
        if not _demuxer_names(container) & ALLOWED_DEMUXERS:
            raise AudioInputError(
                "unsupported_format",
                f"Audio in {container.format.long_name or container.format.name} is not "
                f"accepted; send {FORMATS}.",
            )
        if not container.streams.audio:
            raise AudioInputError("unsupported_format", "The file holds no audio stream.")
        stream = container.streams.audio[0]
        limit_samples = max_ms * SAMPLE_RATE // 1000
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        pieces: list[np.ndarray] = []
        total = 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1)
                    pieces.append(samples)
                    total += samples.size
                if total > limit_samples:
                    raise AudioInputError(
                        "too_long", f"The audio is longer than {max_ms // 60_000} minutes."
                    )
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1))
        except (av.error.FFmpegError, ValueError) as exc:
            if not pieces:
                raise AudioInputError(
                    "unsupported_format", f"The audio could not be decoded; send {FORMATS}."
                ) from exc
            # A file cut short decodes up to the damage: keep what was there.
        pcm = np.concatenate(pieces).astype("<i2").tobytes() if pieces else b""
        if len(pcm) // 2 > limit_samples:
            raise AudioInputError(
                "too_long", f"The audio is longer than {max_ms // 60_000} minutes."
            )
        if not pcm:
            raise AudioInputError("empty", "The audio holds no samples.")
        return DecodedAudio(pcm, container.format.name)
    finally:
        container.close()
