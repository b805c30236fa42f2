"""Sending a message: the reply as one internal event stream, stored atomically at the end.

``prepare`` does every check that can fail before any output (so streaming transports can
still answer with a plain HTTP error); ``run`` yields ``TextDelta``/``Usage``/``AudioChunk``
events and ends with ``Done`` (the stored reply) or ``ErrorEvent`` (nothing stored).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import Session

from avatarium.conversations.idempotency import Attempt
from avatarium.conversations.models import Conversation, Message
from avatarium.conversations.prompt import Turn, build_prompt
from avatarium.conversations.schemas import message_json
from avatarium.conversations.service import ConversationService
from avatarium.core.errors import (
    AIProviderError,
    AvatariumError,
    ConversationNotFoundError,
    InvalidRequestError,
)
from avatarium.core.events import AudioChunk, Done, ErrorEvent, ReplyEvent, TextDelta, Usage
from avatarium.core.ids import new_id
from avatarium.core.timing import current_timings
from avatarium.core.wire import wire_json
from avatarium.keys.service import Principal
from avatarium.limits.base import Reservation
from avatarium.providers.errors import FailureCategory, ProviderError, as_api_error
from avatarium.providers.llm.base import ChatMessage, ChatRequest, LLMProvider
from avatarium.providers.selection import Selected, select_llm, select_tts
from avatarium.providers.tts.base import Speech, TTSProvider
from avatarium.speech.models import AudioClip
from avatarium.storage.base import UTCDateTime, column_values, table_of

# Hot-path statements, built once. Core table inserts skip the ORM's bookkeeping.
_CLAIM_SEQUENCE = (
    update(Conversation)
    .where(Conversation.id == bindparam("conversation_id"), Conversation.status != "ended")
    .values(
        message_count=Conversation.message_count + 2,
        ai_tokens=Conversation.ai_tokens + bindparam("added_ai_tokens"),
        tts_characters=Conversation.tts_characters + bindparam("added_tts_characters"),
        updated_at=bindparam("updated", type_=UTCDateTime()),
    )
    .returning(Conversation.message_count)
    .execution_options(synchronize_session=False)
)
_INSERT_CLIP = insert(table_of(AudioClip))
_INSERT_MESSAGE = insert(table_of(Message))


def ended_error() -> InvalidRequestError:
    return InvalidRequestError(
        "This conversation has ended; start a new one.",
        details={"reason": "conversation_ended"},
    )


@dataclass
class PreparedSend:
    """A send that passed every check; ``run`` produces and stores the reply."""

    principal: Principal
    conversation: Conversation
    content: str
    prompt: list[ChatMessage]
    llm: Selected[LLMProvider]
    tts: Selected[TTSProvider] | None
    voice_id: str
    base_url: str
    reservation: Reservation
    attempt: Attempt | None = None
    started_at: Any = field(default=None)


class ReplyService:
    """Produces and stores replies."""

    def __init__(self, conversations: ConversationService) -> None:
        self._c = conversations

    async def prepare(
        self,
        principal: Principal,
        conversation: Conversation,
        history: Sequence[Turn],
        content: str,
        want_speech: bool,
        base_url: str,
        reservation: Reservation,
    ) -> PreparedSend:
        if conversation.status == "ended":
            raise ended_error()
        providers = self._c.providers
        llm = select_llm(providers, conversation.ai_provider, principal.mode)
        tts = (
            select_tts(providers, conversation.tts_provider, principal.mode)
            if want_speech
            else None
        )
        voice_id = conversation.voice_id or ""
        if tts is not None and tts.name != conversation.tts_provider:
            # Sandbox stand-in: keep the avatar's voice for that engine when it has one.
            avatar = self._c.avatars.get(conversation.avatar_id)
            fallback = avatar.voices.get(tts.name) if avatar else None
            voice_id = (
                voice_id
                if await tts.provider.has_voice(voice_id)
                else (fallback or tts.provider.default_voice)
            )
        prompt = build_prompt(llm.provider, conversation.system_prompt, history, content)
        return PreparedSend(
            principal,
            conversation,
            content,
            prompt,
            llm,
            tts,
            voice_id,
            base_url,
            reservation,
            started_at=self._c.clock.now(),
        )

    async def run(self, send: PreparedSend) -> AsyncGenerator[ReplyEvent, None]:
        """The reply's events. Never raises an API error: a failure is the last event."""
        clip: AudioClip | None = None
        succeeded = discarded = False
        try:
            parts: list[str] = []
            ai_tokens = 0
            async for event in self._generate(send):
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    yield event
                else:
                    ai_tokens = event.ai_tokens
            text = "".join(parts).strip()
            if not text:
                empty = ProviderError(
                    FailureCategory.BAD_RESPONSE, send.llm.name, "the model returned no text"
                )
                raise as_api_error(empty, AIProviderError)
            yield Usage(ai_tokens=ai_tokens)
            speech: Speech | None = None
            if send.tts is not None and send.tts.provider.produces_audio:
                speech = await self._c.speech.synthesize(send.tts.provider, text, send.voice_id)
                yield AudioChunk(
                    0, text, speech.mp3, speech.duration_ms, speech.visemes, speech.words
                )
                yield Usage(ai_tokens=ai_tokens, tts_characters=speech.characters)
                clip = await self._c.speech.save(
                    speech,
                    account_id=send.principal.account_id,
                    mode=send.principal.mode,
                    conversation_id=send.conversation.id,
                )
            stored = await self._store(send, text, ai_tokens, speech, clip)
            succeeded = True
            await send.reservation.commit()
            yield Done(stored)
        except AvatariumError as error:
            # Clean up before telling the client, so an immediate retry finds a clean slate.
            await self._discard(send, clip)
            discarded = True
            yield ErrorEvent(error)
        finally:
            if not succeeded and not discarded:  # cancelled, or a bug
                await self._discard(send, clip)

    async def _discard(self, send: PreparedSend, clip: AudioClip | None) -> None:
        """Remove every trace of a failed or cancelled reply."""
        if clip is not None:
            await self._c.speech.store.delete(clip.storage_key)
        await send.reservation.release()
        if send.attempt is not None:
            await self._c.idempotency.abandon(send.attempt)

    async def _generate(self, send: PreparedSend) -> AsyncIterator[TextDelta | Usage]:
        timings = current_timings.get()
        stream = send.llm.provider.stream(ChatRequest(send.prompt, send.conversation.model))
        try:
            while True:
                started = time.perf_counter()
                try:
                    event = await anext(stream)
                except StopAsyncIteration:
                    break
                except ProviderError as error:
                    raise as_api_error(error, AIProviderError) from error
                finally:
                    if timings is not None:
                        timings.add("ai", (time.perf_counter() - started) * 1000.0)
                yield event
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    async def _store(
        self,
        send: PreparedSend,
        text: str,
        ai_tokens: int,
        speech: Speech | None,
        clip: AudioClip | None,
    ) -> dict[str, Any]:
        """Store the user message and the reply together, or nothing at all."""
        c = self._c
        now = c.clock.now()
        tts_chars = speech.characters if speech else 0
        speech_hint = None
        if send.tts is not None and not send.tts.provider.produces_audio:
            speech_hint = {"provider": send.tts.name, "voice_id": send.voice_id, "text": text}
        user = Message(
            id=new_id("msg"),
            conversation_id=send.conversation.id,
            role="user",
            content=send.content,
            ai_tokens=0,
            tts_characters=0,
            created_at=send.started_at or now,
        )
        reply = Message(
            id=new_id("msg"),
            conversation_id=send.conversation.id,
            role="assistant",
            content=text,
            reply_to=user.id,
            audio_id=clip.id if clip else None,
            speech=speech_hint,
            ai_provider=send.llm.name,
            ai_tokens=ai_tokens,
            tts_characters=tts_chars,
            created_at=now,
        )
        body = message_json(reply, clip, c.speech, send.base_url)
        stored_body = wire_json(body)

        def work(session: Session) -> None:
            # One atomic statement claims two sequence numbers and adds the usage; concurrent
            # sends to one conversation therefore never collide, on any backend.
            claimed = session.execute(
                _CLAIM_SEQUENCE,
                {
                    "conversation_id": send.conversation.id,
                    "added_ai_tokens": ai_tokens,
                    "added_tts_characters": tts_chars,
                    "updated": now,
                },
            ).first()
            if claimed is None:
                if session.get(Conversation, send.conversation.id) is None:
                    raise ConversationNotFoundError(f"No conversation {send.conversation.id!r}.")
                raise ended_error()
            user.seq, reply.seq = claimed[0] - 2, claimed[0] - 1
            if clip is not None:
                session.execute(_INSERT_CLIP, [column_values(clip)])
            session.execute(_INSERT_MESSAGE, [column_values(user), column_values(reply)])
            if send.attempt is not None:
                c.idempotency.complete(session, send.attempt, 200, stored_body)

        await c.db.write(work)
        return body
