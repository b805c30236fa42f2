"""One MP3 from several: the stored audio of a reply that was spoken sentence by sentence.

MP3 frames are self-contained, so joining is concatenation (without the parts' ID3 tags).
Each part's timings move by the playing time of the parts before it, measured from the
frames themselves, because that is where a player will be when the part starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from avatarium.providers.tts.base import Speech
from avatarium.speech.mp3 import mp3_duration_ms, strip_id3


def join_speech(parts: Sequence[Speech]) -> Speech:
    """The parts played back to back, with every viseme and word time shifted to match."""
    if len(parts) == 1:
        return parts[0]
    frames = [strip_id3(part.mp3) for part in parts]
    offsets: list[float] = []
    elapsed = 0.0
    for data in frames:
        offsets.append(elapsed)
        elapsed += mp3_duration_ms(data)
    return Speech(
        mp3=b"".join(frames),
        duration_ms=round(elapsed),
        visemes=_shifted([p.visemes for p in parts], offsets),
        words=_shifted([p.words for p in parts], offsets),
        characters=sum(part.characters for part in parts),
    )


def _shifted(
    timings: list[list[dict[str, Any]] | None], offsets: list[float]
) -> list[dict[str, Any]] | None:
    if any(part is None for part in timings):
        return None  # one untimed part leaves the whole untimed rather than half right
    joined: list[dict[str, Any]] = []
    for part, offset in zip(timings, offsets, strict=True):
        assert part is not None
        for entry in part:
            joined.append({**entry, "time_ms": round(entry["time_ms"] + offset)})
    return joined
