"""Speaking a reply: chunk by chunk while the model writes, or all at once at the end.

Chunks are synthesized one after another, in order, on one task, so ``audio`` events leave
in order and the first provider that answers speaks every later chunk (a voice must not
change mid-reply). Each chunk's MP3 is written as soon as it is made, so its signed URL
works at once; the database rows come with the stored reply, or the files are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from avatarium.core.errors import AvatariumError
from avatarium.core.events import AudioChunk
from avatarium.providers.tts.base import Speech
from avatarium.speech.joined import join_speech
from avatarium.speech.models import AudioClip
from avatarium.speech.service import SpeechService

SpeakFn = Callable[[str], Awaitable[Speech]]
Deliver = Callable[[AudioChunk | AvatariumError | None], None]


class ReplyVoice:
    """The speech of one reply, kept until it is stored or discarded."""

    def __init__(
        self,
        speech: SpeechService,
        speak: SpeakFn,
        *,
        account_id: str,
        mode: str,
        conversation_id: str,
        base_url: str,
    ) -> None:
        self._speech = speech
        self._speak = speak
        self._owner = (account_id, mode, conversation_id)
        self._base_url = base_url
        self.parts: list[tuple[Speech, AudioClip]] = []
        self.joined: AudioClip | None = None  # the whole reply's clip, when it is a new file
        self._queue: asyncio.Queue[str | None] | None = None
        self._worker: asyncio.Task[None] | None = None

    @property
    def characters(self) -> int:
        return sum(speech.characters for speech, _clip in self.parts)

    async def speak(self, text: str) -> AudioChunk:
        """Synthesize and save the next chunk; the event that announces it."""
        speech = await self._speak(text)
        account_id, mode, conversation_id = self._owner
        clip = await self._speech.save(
            speech, account_id=account_id, mode=mode, conversation_id=conversation_id
        )
        self.parts.append((speech, clip))
        return AudioChunk(
            len(self.parts) - 1,
            text,
            speech.mp3,
            speech.duration_ms,
            speech.visemes,
            speech.words,
            url=self._speech.url(self._base_url, clip.id),
        )

    # Streaming: chunks queue up while the model writes; one task speaks them in order.

    def start(self, deliver: Deliver) -> None:
        """Speak queued chunks in the background; each result (an event, or the error that
        ended the speech) goes to ``deliver``, then ``None`` once :meth:`close` was called
        and every chunk is spoken."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._queue = queue

        async def work() -> None:
            while (text := await queue.get()) is not None:
                try:
                    deliver(await self.speak(text))
                except AvatariumError as error:
                    deliver(error)
                    return
            deliver(None)

        self._worker = asyncio.ensure_future(work())

    def add(self, text: str) -> None:
        """Queue a chunk to be spoken after the ones before it."""
        assert self._queue is not None
        self._queue.put_nowait(text)

    def close(self) -> None:
        """No more chunks will come."""
        assert self._queue is not None
        self._queue.put_nowait(None)

    async def stop(self) -> None:
        """Stop speaking at once (the reply failed or its client left)."""
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    # The result.

    async def whole(self) -> tuple[Speech | None, AudioClip | None]:
        """The reply's complete speech and its clip: the only chunk, or the chunks joined
        and saved as one more file."""
        if not self.parts:
            return None, None
        if len(self.parts) == 1:
            return self.parts[0]
        speech = join_speech([speech for speech, _clip in self.parts])
        account_id, mode, conversation_id = self._owner
        self.joined = await self._speech.save(
            speech, account_id=account_id, mode=mode, conversation_id=conversation_id
        )
        return speech, self.joined

    def clips(self) -> list[AudioClip]:
        """Every clip to store with the reply: the chunks (their URLs went out), then the
        joined whole."""
        clips = [clip for _speech, clip in self.parts]
        if self.joined is not None:
            clips.append(self.joined)
        return clips

    async def keep(self, count: int) -> None:
        """Keep the first ``count`` chunks (those the client was told of); delete the rest."""
        for _speech, clip in self.parts[count:]:
            await self._speech.store.delete(clip.storage_key)
        del self.parts[count:]

    async def discard(self) -> None:
        """Delete every file this reply wrote."""
        await self.stop()
        for clip in self.clips():
            await self._speech.store.delete(clip.storage_key)
