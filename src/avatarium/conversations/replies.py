"""Sending a message: the reply as one internal event stream, stored atomically at the end.

``prepare`` does every check that can fail before any output (so streaming transports can
still answer with a plain HTTP error); ``run`` yields ``TextDelta``/``Usage``/``AudioChunk``
events and ends with ``Done`` (the stored reply) or ``ErrorEvent`` (nothing stored).
"""

from __future__ import annotations

import logging
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
    InvalidParameterError,
    InvalidRequestError,
    TTSProviderError,
)
from avatarium.core.events import AudioChunk, Done, ErrorEvent, ReplyEvent, TextDelta, Usage
from avatarium.core.ids import new_id
from avatarium.core.timing import current_timings
from avatarium.core.wire import wire_json
from avatarium.keys.service import Principal
from avatarium.providers.byok import unseal
from avatarium.providers.errors import FailureCategory, ProviderError, as_api_error
from avatarium.providers.fallback import parse_chain
from avatarium.providers.llm.base import ChatMessage, ChatRequest, LLMProvider
from avatarium.providers.selection import Selected, select_llm, select_tts
from avatarium.providers.tts.base import Speech, TTSProvider
from avatarium.speech.models import AudioClip
from avatarium.storage.base import UTCDateTime, column_values, table_of
from avatarium.usage.ledger import Reservation

log = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class Voiced:
    """A speech provider and the voice to use with it."""

    selected: Selected[TTSProvider]
    voice_id: str


@dataclass
class PreparedSend:
    """A send that passed every check; ``run`` produces and stores the reply."""

    principal: Principal
    conversation: Conversation
    content: str
    history: Sequence[Turn]
    prompt: list[ChatMessage]
    llm: list[Selected[LLMProvider]]  # the provider, then its fallbacks
    tts: list[Voiced]  # empty: no speech
    base_url: str
    reservation: Reservation
    attempt: Attempt | None = None
    started_at: Any = field(default=None)
    answered_ai: str | None = None
    answered_tts: str | None = None


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
        llm = self._llm_chain(principal, conversation)
        tts = await self._tts_chain(principal, conversation) if want_speech else []
        prompt = build_prompt(llm[0].provider, conversation.system_prompt, history, content)
        return PreparedSend(
            principal,
            conversation,
            content,
            history,
            prompt,
            llm,
            tts,
            base_url,
            reservation,
            started_at=self._c.clock.now(),
        )

    def _llm_chain(
        self, principal: Principal, conversation: Conversation
    ) -> list[Selected[LLMProvider]]:
        c = self._c
        if principal.mode == "test":  # the sandbox: embedded only, never a cloud call
            return [select_llm(c.providers, conversation.ai_provider, principal.mode)]
        if conversation.byok_secret is not None:
            # The client's own key: no fallback, so its failures reach the client.
            key = unseal(c.sealer, conversation.byok_secret)
            return [Selected(key.provider, c.byok.get(key), sandbox=False)]
        primary = select_llm(c.providers, conversation.ai_provider, principal.mode)
        candidates = {primary.name: primary}
        for name in parse_chain(c.settings.ai_fallback):
            provider = c.providers.llm(name)
            if provider is not None and name not in candidates:
                candidates[name] = Selected(name, provider, sandbox=False)
        return [candidates[name] for name in c.health.order("llm", list(candidates))]

    async def _tts_chain(self, principal: Principal, conversation: Conversation) -> list[Voiced]:
        c = self._c
        primary = select_tts(c.providers, conversation.tts_provider, principal.mode)
        avatar = c.avatars.get(conversation.avatar_id)
        voice_id = conversation.voice_id or primary.provider.default_voice
        if primary.name != conversation.tts_provider and not await primary.provider.has_voice(
            voice_id
        ):
            # Sandbox stand-in: the avatar's voice for that engine, or the engine's default.
            voice_id = (avatar.voices.get(primary.name) if avatar else None) or (
                primary.provider.default_voice
            )
        candidates = {primary.name: Voiced(primary, voice_id)}
        if principal.mode == "live" and primary.provider.produces_audio:
            for name in parse_chain(c.settings.tts_fallback):
                provider = c.providers.tts(name)
                if provider is None or not provider.produces_audio or name in candidates:
                    continue
                voice = (avatar.voices.get(name) if avatar else None) or provider.default_voice
                candidates[name] = Voiced(Selected(name, provider, sandbox=False), voice)
        return [candidates[name] for name in c.health.order("tts", list(candidates))]

    async def run(self, send: PreparedSend) -> AsyncGenerator[ReplyEvent, None]:
        """The reply's events. Never raises an API error: a failure is the last event."""
        clip: AudioClip | None = None
        succeeded = discarded = False
        ai_tokens = tts_characters = 0  # provider usage spent, counted even on failure
        try:
            parts: list[str] = []
            async for event in self._generate(send):
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    yield event
                else:
                    ai_tokens = event.ai_tokens
            text = "".join(parts).strip()
            if not text:
                empty = ProviderError(
                    FailureCategory.BAD_RESPONSE,
                    send.answered_ai or send.llm[0].name,
                    "the model returned no text",
                )
                raise as_api_error(empty, AIProviderError)
            yield Usage(ai_tokens=ai_tokens)
            speech: Speech | None = None
            if send.tts and send.tts[0].selected.provider.produces_audio:
                speech = await self._speak(send, text)
                tts_characters = speech.characters
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
            yield Done(stored)
        except AvatariumError as error:
            # Clean up before telling the client, so an immediate retry finds a clean slate.
            await self._discard(send, clip, ai_tokens, tts_characters)
            discarded = True
            yield ErrorEvent(error)
        finally:
            if not succeeded and not discarded:  # cancelled, or a bug
                await self._discard(send, clip, ai_tokens, tts_characters)

    async def _discard(
        self, send: PreparedSend, clip: AudioClip | None, ai_tokens: int, tts_characters: int
    ) -> None:
        """Remove every trace of a failed or cancelled reply (but count what it cost)."""
        if clip is not None:
            await self._c.speech.store.delete(clip.storage_key)
        await send.reservation.release(ai_tokens, tts_characters)
        if send.attempt is not None:
            await self._c.idempotency.abandon(send.attempt)

    async def _generate(self, send: PreparedSend) -> AsyncIterator[TextDelta | Usage]:
        """The first provider of the chain that answers; a provider that fails before it
        wrote anything hands over to the next (after its own retries)."""
        c = self._c
        timings = current_timings.get()
        last_error: ProviderError | None = None
        for position, candidate in enumerate(send.llm):
            if position == 0:
                prompt = send.prompt
            else:
                try:
                    prompt = build_prompt(
                        candidate.provider,
                        send.conversation.system_prompt,
                        send.history,
                        send.content,
                    )
                except InvalidParameterError:
                    log.warning(
                        "fallback %s skipped: the prompt exceeds its context window", candidate.name
                    )
                    continue
            # The conversation's model name means something only to its own provider.
            own = candidate.name == send.conversation.ai_provider
            model = send.conversation.model if own else None
            stream = candidate.provider.stream(ChatRequest(prompt, model))
            wrote = False
            try:
                while True:
                    started = time.perf_counter()
                    try:
                        event = await anext(stream)
                    except StopAsyncIteration:
                        break
                    finally:
                        if timings is not None:
                            timings.add("ai", (time.perf_counter() - started) * 1000.0)
                    wrote = wrote or isinstance(event, TextDelta)
                    yield event
            except ProviderError as error:
                c.health.failed("llm", candidate.name)
                if wrote:  # text already went out: no other provider may continue it
                    raise as_api_error(error, AIProviderError) from error
                last_error = error
                log.warning("AI provider %s failed (%s)", candidate.name, error.category.value)
                continue
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
            c.health.succeeded("llm", candidate.name)
            send.answered_ai = candidate.name
            return
        assert last_error is not None  # the first candidate always runs
        raise as_api_error(last_error, AIProviderError) from last_error

    async def _speak(self, send: PreparedSend, text: str) -> Speech:
        """Speech from the first provider of the chain that succeeds."""
        c = self._c
        for position, voiced in enumerate(send.tts):
            name = voiced.selected.name
            try:
                speech = await c.speech.synthesize(voiced.selected.provider, text, voiced.voice_id)
            except ProviderError as error:
                c.health.failed("tts", name)
                if position == len(send.tts) - 1:
                    raise as_api_error(error, TTSProviderError) from error
                log.warning(
                    "speech provider %s failed (%s); falling back", name, error.category.value
                )
                continue
            c.health.succeeded("tts", name)
            send.answered_tts = name
            return speech
        raise AssertionError("an empty speech chain is never spoken")

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
        if send.tts and not send.tts[0].selected.provider.produces_audio:
            first = send.tts[0]
            speech_hint = {
                "provider": first.selected.name,
                "voice_id": first.voice_id,
                "text": text,
            }
            send.answered_tts = first.selected.name
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
            ai_provider=send.answered_ai,
            tts_provider=send.answered_tts,
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
            send.reservation.commit_in(session, ai_tokens, tts_chars)
            if send.attempt is not None:
                c.idempotency.complete(session, send.attempt, 200, stored_body)

        await c.db.write(work)
        return body
