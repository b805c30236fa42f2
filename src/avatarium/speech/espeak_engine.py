"""eSpeak NG through its C library (``espeakng-loader``), synchronous mode with a callback.

eSpeak keeps global state and is not thread-safe, so one lock guards the library; a whole
sentence renders in a few milliseconds, so callers simply queue on it from a worker thread.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Any

AUDIO_OUTPUT_SYNCHRONOUS = 2
INIT_PHONEME_EVENTS = 0x0001
INIT_DONT_EXIT = 0x8000
CHARS_UTF8 = 1
POS_CHARACTER = 1

EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
EVENT_PHONEME = 7


class _Event(ctypes.Structure):
    # Mirrors espeak_EVENT in speak_lib.h; ``id`` is a union whose widest member is char[8].
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True, slots=True)
class Rendering:
    """Raw output of one synthesis: 16-bit mono PCM and the engine's timed events."""

    pcm: bytes
    sample_rate: int
    phonemes: list[tuple[int, str]]  # (time_ms, phoneme mnemonic)
    words: list[tuple[int, int, int]]  # (time_ms, text_position 1-based, length)

    @property
    def duration_ms(self) -> int:
        return round(len(self.pcm) / 2 / self.sample_rate * 1000)


class EspeakEngine:
    """The loaded library. Use :func:`shared_engine` to get the process-wide instance."""

    def __init__(self) -> None:
        import espeakng_loader  # imported here: only servers that speak need it

        self._lib: Any = ctypes.CDLL(espeakng_loader.get_library_path())
        data_path = espeakng_loader.get_data_path().encode()
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        rate = self._lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, INIT_PHONEME_EVENTS | INIT_DONT_EXIT
        )
        if rate <= 0:
            raise RuntimeError("eSpeak NG failed to initialise")
        self.sample_rate: int = rate
        self._lock = threading.Lock()
        self._pcm: list[bytes] = []
        self._phonemes: list[tuple[int, str]] = []
        self._words: list[tuple[int, int, int]] = []
        # Keep a reference: ctypes frees the trampoline if the Python object is collected.
        self._callback = _Callback(self._on_synth)
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav: Any, count: int, events: Any) -> int:
        if count > 0:
            self._pcm.append(ctypes.string_at(wav, count * 2))
        index = 0
        while events[index].type != EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == EVENT_PHONEME:
                name = bytes(event.id).split(b"\0", 1)[0].decode("utf-8", "replace")
                self._phonemes.append((event.audio_position, name))
            elif event.type == EVENT_WORD:
                self._words.append((event.audio_position, event.text_position, event.length))
            elif event.type == EVENT_MSG_TERMINATED:
                break
            index += 1
        return 0

    def render(self, text: str, voice: str, rate_wpm: int = 175) -> Rendering:
        """Synthesize ``text`` with an eSpeak voice name (e.g. ``en-us+f3``). Blocking."""
        encoded = text.encode("utf-8") + b"\0"
        with self._lock:
            self._pcm, self._phonemes, self._words = [], [], []
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak has no voice {voice!r}")
            self._lib.espeak_SetParameter(1, rate_wpm, 0)  # espeakRATE
            status = self._lib.espeak_Synth(
                encoded, len(encoded), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None
            )
            self._lib.espeak_Synchronize()
            if status != 0:
                raise RuntimeError(f"eSpeak synthesis failed with status {status}")
            return Rendering(b"".join(self._pcm), self.sample_rate, self._phonemes, self._words)


_engine: EspeakEngine | None = None
_engine_lock = threading.Lock()


def shared_engine() -> EspeakEngine:
    """The process-wide engine (eSpeak can only be initialised once per process)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = EspeakEngine()
        return _engine
