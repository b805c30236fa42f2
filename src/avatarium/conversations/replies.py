"""Sending a message: the reply as one internal event stream, stored atomically at the end.

``start`` does every check that can fail before any output (so streaming transports can
still answer with a plain HTTP error); ``run`` yields ``TextDelta``/``Usage``/``AudioChunk``
events and ends with ``Done`` (the stored reply) or ``ErrorEvent`` (nothing stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, bindparam, case, false, func, insert, select, update
from sqlalchemy.engine import Connection

from avatarium.analytics.rollup import add_activity, add_latency, day_of
from avatarium.avatars.catalog import Avatar
from avatarium.conversations.idempotency import Attempt
from avatarium.conversations.models import Conversation, Message
from avatarium.conversations.prompt import Turn, build_prompt
from avatarium.conversations.schemas import MAX_CONTENT, message_json
from avatarium.conversations.service import ConversationService
from avatarium.conversations.voicing import ReplyVoice
from avatarium.core.errors import (
    AIProviderError,
    AvatariumError,
    ConversationNotFoundError,
    InvalidParameterError,
    InvalidRequestError,
    TTSProviderError,
)
from avatarium.core.events import (
    AudioChunk,
    Done,
    ErrorEvent,
    Interrupted,
    ReplyEvent,
    TextDelta,
    Usage,
)
from avatarium.core.ids import new_id
from avatarium.core.timing import current_timings
from avatarium.core.wire import wire_json
from avatarium.keys.service import Principal
from avatarium.knowledge.grounding import grounded, sources_json
from avatarium.knowledge.retrieval import Hit
from avatarium.listening.service import Heard
from avatarium.providers.byok import unseal
from avatarium.providers.errors import FailureCategory, ProviderError, as_api_error
from avatarium.providers.fallback import parse_chain
from avatarium.providers.llm.base import ChatMessage, ChatRequest, LLMProvider, TokenMeter
from avatarium.providers.selection import Selected, select_llm, select_tts
from avatarium.providers.tts.base import Speech, TTSProvider
from avatarium.safety.canned import NAME as CANNED
from avatarium.safety.canned import CannedReply
from avatarium.safety.declines import declines
from avatarium.safety.models import SafetyEvent
from avatarium.safety.rules import (
    Verdict,
    check,
    escalate,
    filter_reply,
    topic_verdict,
    wants,
)
from avatarium.speech.chunker import SentenceChunker
from avatarium.speech.models import AudioClip
from avatarium.storage.base import UTCDateTime, column_values, table_of
from avatarium.usage.ledger import Reservation, UsageLedger
from avatarium.webhooks.events import Outbox

log = logging.getLogger(__name__)

# Hot-path statements, built once. Core table inserts skip the ORM's bookkeeping.
_CLAIM_SEQUENCE = (
    update(Conversation)
    .where(Conversation.id == bindparam("conversation_id"), Conversation.status != "ended")
    .values(
        message_count=Conversation.message_count + 2,
        ai_tokens=Conversation.ai_tokens + bindparam("added_ai_tokens"),
        stt_ms=Conversation.stt_ms + bindparam("added_stt_ms"),
        tts_characters=Conversation.tts_characters + bindparam("added_tts_characters"),
        failed_answers=case(
            (bindparam("failed", type_=Boolean()), Conversation.failed_answers + 1), else_=0
        ),
        updated_at=bindparam("updated", type_=UTCDateTime()),
        first_message_at=func.coalesce(
            Conversation.first_message_at, bindparam("first", type_=UTCDateTime())
        ),
        last_message_at=bindparam("updated", type_=UTCDateTime()),
    )
    .returning(Conversation.message_count)
    .execution_options(synchronize_session=False)
)
_EXISTS = select(Conversation.id).where(Conversation.id == bindparam("id"))
_INSERT_CLIP = insert(table_of(AudioClip))
_INSERT_MESSAGE = insert(table_of(Message))
_INSERT_SAFETY_EVENT = insert(table_of(SafetyEvent))
# Replies in a row that found no relevant knowledge and declined, before a hand-off.
FAILED_ANSWERS = 3
# Only the first hand-off escalates: its reason stays, and conversation.escalated fires once.
_ESCALATE = (
    update(Conversation)
    .where(Conversation.id == bindparam("conversation_id"), Conversation.escalated == false())
    .values(escalated=True, escalation_reason=bindparam("reason"))
    .execution_options(synchronize_session=False)
)


Hearing = Callable[[], Awaitable[Heard]]  # transcribes a spoken message when called
# For a conversation whose avatar is gone from the operator's file.
DEFAULT_PERSONALITY = (
    "You are a friendly assistant. You answer in two or three short spoken sentences."
)


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


@dataclass(slots=True)
class _Generation:
    """The provider generating now, its prompt, its meter and the text it has written."""

    provider: LLMProvider
    prompt: list[ChatMessage]
    meter: TokenMeter
    parts: list[str] = field(default_factory=list)

    def cost(self) -> tuple[int, bool]:
        """(tokens, estimated): what the engine or vendor reported so far; whatever it did
        not report is estimated with the provider's own counter. A provider that failed
        before reporting or writing anything is charged nothing (vendors bill no refusal)."""
        text = "".join(self.parts)
        if self.meter.prompt_tokens is None and self.meter.completion_tokens is None and not text:
            return 0, False
        estimated = False
        prompt = self.meter.prompt_tokens
        if prompt is None:
            prompt, estimated = self.provider.count_tokens(self.prompt), True
        completion = self.meter.completion_tokens
        if completion is None:
            completion = 0
            if text:
                written = [*self.prompt, ChatMessage("assistant", text)]
                completion = max(
                    1,
                    self.provider.count_tokens(written) - self.provider.count_tokens(self.prompt),
                )
                estimated = True
        return prompt + completion, estimated


# Put on a reply's queue to wake its loop for an interrupt; never handed on.
_WAKE = TextDelta("")


class _InterruptedError(Exception):
    """The user spoke over the reply (raised inside the reply's own event loop)."""


@dataclass(slots=True)
class _Spent:
    """What a reply has written and its model cost so far (the cost counts even if it
    fails; what its speech cost, the ReplyVoice knows)."""

    text: str = ""
    ai_tokens: int = 0
    generation: _Generation | None = None  # the provider at work, until its Usage came
    shown: list[str] = field(default_factory=list)  # text deltas handed to the client
    spoken: list[AudioChunk] = field(default_factory=list)  # audio handed to the client

    def written(self) -> list[str]:
        """The text pieces of the provider that answered (a failed fallback wrote none)."""
        return self.generation.parts if self.generation is not None else []

    def model_cost(self) -> tuple[int, bool]:
        """(tokens, estimated) to charge for the model, whether or not it finished."""
        if self.ai_tokens or self.generation is None:
            return self.ai_tokens, False
        return self.generation.cost()


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
    chunked: bool = False  # speak sentence by sentence while the model writes (streaming)
    started_at: Any = field(default=None)
    perf_start: float = field(default_factory=time.perf_counter)  # for phase timings
    answered_ai: str | None = None
    answered_tts: str | None = None
    heard: Heard | None = None  # the user spoke: what was heard, and how
    system_prompt: str = ""  # the avatar's personality, before any knowledge is added
    knowledge: list[Hit] = field(default_factory=list)  # relevant chunks, best first
    sources: list[dict[str, Any]] = field(default_factory=list)  # the knowledge it used
    verdict: Verdict | None = None  # the safety rules answered instead of the model
    avoid: list[str] = field(default_factory=list)  # the avatar's topics to avoid
    interrupt_requested: bool = False
    _wake: Callable[[], None] | None = None

    def interrupt(self) -> None:
        """Stop the reply at once and store what had been spoken (barge-in). A reply
        already being stored is not stopped."""
        self.interrupt_requested = True
        if self._wake is not None:
            self._wake()


def prompt_for(provider: LLMProvider, send: PreparedSend) -> list[ChatMessage]:
    """The prompt ``provider`` is given for ``send``: its knowledge placed the way that
    provider follows best (``grounding.py``). ``send.sources`` become what it was given."""
    system_prompt, asked, used = grounded(
        provider, send.system_prompt, send.content, send.knowledge
    )
    send.sources = sources_json(used, send.content)
    return build_prompt(provider, system_prompt, send.history, asked)


class ReplyService:
    """Produces and stores replies."""

    def __init__(self, conversations: ConversationService) -> None:
        self._c = conversations

    async def start(
        self,
        principal: Principal,
        conversation: Conversation,
        history: Sequence[Turn],
        content: str | Hearing,
        want_speech: bool,
        base_url: str,
        usage: UsageLedger,
        *,
        chunked: bool = False,
    ) -> PreparedSend:
        """Reserve a reply from the monthly quota, then do every check that can fail before
        any output; a send refused here gives its reservation straight back. ``chunked``
        replies speak sentence by sentence while the model writes (streaming). A spoken
        message comes as a ``Hearing``: it is transcribed once the quota has room (the
        recogniser is a provider, so it runs last of the checks)."""
        reservation = await usage.reserve(principal)
        heard: Heard | None = None
        try:
            if conversation.status == "ended":
                raise ended_error()
            # One lookup per send (a custom avatar is a database read).
            avatar = await self._c.avatars.resolve(principal, conversation.avatar_id)
            llm = self._llm_chain(principal, conversation)
            tts = await self._tts_chain(principal, conversation, avatar) if want_speech else []
            if not isinstance(content, str):
                heard = await content()
                content = heard.text[:MAX_CONTENT]
            system_prompt = conversation.system_prompt or (
                avatar.personality if avatar is not None else DEFAULT_PERSONALITY
            )
            verdict, used = await self._rules_and_knowledge(conversation, avatar, content)
            if verdict is not None:
                # The rules answer: no model call, no knowledge, the same storage and speech.
                llm = [Selected(CANNED, CannedReply(verdict.reply), sandbox=False)]
            send = PreparedSend(
                principal,
                conversation,
                content,
                history,
                [],
                llm,
                tts,
                base_url,
                reservation,
                chunked=chunked,
                started_at=self._c.clock.now(),
                heard=heard,
                system_prompt=system_prompt,
                knowledge=used,
                verdict=verdict,
                avoid=list(avatar.topics_to_avoid) if avatar is not None else [],
            )
            send.prompt = prompt_for(llm[0].provider, send)
        except BaseException:
            await reservation.release()
            raise
        return send

    async def _rules_and_knowledge(
        self, conversation: Conversation, avatar: Avatar | None, content: str
    ) -> tuple[Verdict | None, list[Hit]]:
        """The safety rules' verdict on the message, else the relevant knowledge for it.

        Order: the rules that read the words (hand-off requests, keywords, sentiment,
        topics by name); topics by meaning; then retrieval, and ``failed_answers``: after
        two declined replies without relevant knowledge, a third question that finds none
        is handed over instead of declined again."""
        c = self._c
        escalation = avatar.escalation if avatar is not None else None
        verdict = None
        if avatar is not None and avatar.has_rules:
            verdict = check(content, list(avatar.topics_to_avoid), escalation)
        probe = None
        topics = c.knowledge.topics
        if verdict is None and avatar is not None and avatar.topics_to_avoid and topics:
            probe = await c.knowledge.probe(content)
            topic = (
                await topics.match(probe.vector, list(avatar.topics_to_avoid)) if probe else None
            )
            if topic is not None:
                verdict = topic_verdict(topic)
        if verdict is not None:
            return verdict, []
        hits = await c.knowledge.retrieve(conversation.avatar_id, content, probe=probe)
        # Only what is close enough to the question goes into the prompt.
        relevant = [hit for hit in hits if hit.relevant]
        if (
            not relevant
            and escalation is not None
            and wants(escalation, "failed_answers")
            and conversation.failed_answers >= FAILED_ANSWERS - 1
        ):
            return escalate(escalation, "failed_answers"), []
        return None, relevant

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

    async def _tts_chain(
        self, principal: Principal, conversation: Conversation, avatar: Avatar | None
    ) -> list[Voiced]:
        c = self._c
        primary = select_tts(c.providers, conversation.tts_provider, principal.mode)
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
        c = self._c
        voice = ReplyVoice(
            c.speech,
            lambda text: self._speak(send, text),
            account_id=send.principal.account_id,
            mode=send.principal.mode,
            conversation_id=send.conversation.id,
            base_url=send.base_url,
        )
        spent = _Spent()
        succeeded = discarded = False
        try:
            produce = self._streamed if send.chunked else self._collected
            try:
                async with aclosing(produce(send, voice, spent)) as events:
                    async for event in events:
                        if isinstance(event, AudioChunk):
                            if not spent.spoken and send.chunked:
                                c.on_phase("first_audio", time.perf_counter() - send.perf_start)
                            spent.spoken.append(event)
                        elif isinstance(event, TextDelta):
                            spent.shown.append(event.text)
                        yield event
            except _InterruptedError:
                stored = await self._store_interrupted(send, voice, spent)
                succeeded = True
                yield Interrupted(stored)
                return
            if send.chunked and self._was_filtered(send) and self._speaks(send):
                # The streamed sentences of a filtered reply are taken back; the redirect
                # is spoken instead (the done message's content replaces what was shown).
                await voice.keep(0)
                chunk = await voice.speak(spent.text)
                spent.spoken.append(chunk)
                yield chunk
            speech, clip = await voice.whole()
            stored = await self._store(send, spent, speech, clip, voice.clips())
            succeeded = True
            yield Done(stored)
        except AvatariumError as error:
            # Clean up before telling the client, so an immediate retry finds a clean slate.
            await self._discard(send, voice, spent, error)
            discarded = True
            yield ErrorEvent(error)
        finally:
            if not succeeded and not discarded:  # cancelled, or a bug
                await self._discard(send, voice, spent, None)

    async def _store_interrupted(
        self, send: PreparedSend, voice: ReplyVoice, spent: _Spent
    ) -> dict[str, Any]:
        """Store the user's message and the reply as far as it had been spoken: the text
        whose audio went out (or, without speech, the text shown), marked interrupted."""
        await voice.keep(len(spent.spoken))
        if self._speaks(send):
            text = " ".join(chunk.text.strip() for chunk in spent.spoken).strip()
        else:
            text = "".join(spent.shown).strip()
        spent.ai_tokens, _estimated = spent.model_cost()
        spent.text = text
        speech, clip = await voice.whole()
        return await self._store(send, spent, speech, clip, voice.clips(), interrupted=True)

    def _speaks(self, send: PreparedSend) -> bool:
        return bool(send.tts) and send.tts[0].selected.provider.produces_audio

    async def _collected(
        self, send: PreparedSend, voice: ReplyVoice, spent: _Spent
    ) -> AsyncGenerator[ReplyEvent, None]:
        """Text first, then the speech of all of it in one piece: for clients that wait for
        the whole reply anyway (one vendor call, prosody across sentences, least overhead)."""
        async for event in self._generate(send, spent):
            if isinstance(event, TextDelta):
                yield event
            else:
                spent.ai_tokens = event.ai_tokens
        spent.text = self._filtered(send, self._complete_text(send, spent.written()))
        yield Usage(ai_tokens=spent.ai_tokens)
        if self._speaks(send):
            yield await voice.speak(spent.text)
            yield Usage(ai_tokens=spent.ai_tokens, tts_characters=voice.characters)

    async def _streamed(
        self, send: PreparedSend, voice: ReplyVoice, spent: _Spent
    ) -> AsyncGenerator[ReplyEvent, None]:
        """Text as it comes, and each sentence's speech as soon as it is ready while the
        model keeps writing. The model and the speech run as two tasks feeding one queue."""
        out: asyncio.Queue[ReplyEvent | AvatariumError | None] = asyncio.Queue()
        speaks = self._speaks(send)
        send._wake = lambda: out.put_nowait(_WAKE)
        chunker = SentenceChunker()

        async def write() -> None:
            try:
                async for event in self._generate(send, spent):
                    if isinstance(event, TextDelta):
                        out.put_nowait(event)
                        if speaks:
                            for chunk in chunker.feed(event.text):
                                voice.add(chunk)
                    else:
                        spent.ai_tokens = event.ai_tokens
                spent.text = self._filtered(send, self._complete_text(send, spent.written()))
            except AvatariumError as error:
                out.put_nowait(error)
                return
            if speaks:
                if not self._was_filtered(send):  # the rest of a filtered reply is not spoken
                    for chunk in chunker.flush():
                        voice.add(chunk)
                voice.close()
            out.put_nowait(Usage(ai_tokens=spent.ai_tokens))
            out.put_nowait(None)

        if speaks:
            voice.start(out.put_nowait)
        writer = asyncio.ensure_future(write())
        open_sources = 2 if speaks else 1
        try:
            while open_sources:
                if send.interrupt_requested:
                    raise _InterruptedError
                item = await out.get()
                if item is _WAKE:
                    continue
                if item is None:
                    open_sources -= 1
                elif isinstance(item, AvatariumError):
                    raise item
                else:
                    yield item
            if speaks:
                yield Usage(ai_tokens=spent.ai_tokens, tts_characters=voice.characters)
        finally:
            # On failure or cancellation: stop the model (its stream closes with the task)
            # and the speech at once.
            if not writer.done():
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await voice.stop()
            send._wake = None

    @staticmethod
    def _filtered(send: PreparedSend, text: str) -> str:
        """The output filter: a model's reply that brings up a topic to avoid becomes the
        polite redirect (``safety.action: filter_triggered``)."""
        if send.verdict is not None or not send.avoid:
            return text
        verdict = filter_reply(text, send.avoid)
        if verdict is None:
            return text
        send.verdict = verdict
        return verdict.reply

    @staticmethod
    def _was_filtered(send: PreparedSend) -> bool:
        return send.verdict is not None and send.verdict.safety["action"] == "filter_triggered"

    @staticmethod
    def _complete_text(send: PreparedSend, parts: list[str]) -> str:
        text = "".join(parts).strip()
        if not text:
            empty = ProviderError(
                FailureCategory.BAD_RESPONSE,
                send.answered_ai or send.llm[0].name,
                "the model returned no text",
            )
            raise as_api_error(empty, AIProviderError)
        return text

    async def _discard(
        self,
        send: PreparedSend,
        voice: ReplyVoice,
        spent: _Spent,
        error: AvatariumError | None,
    ) -> None:
        """Remove every trace of a failed or cancelled reply (but count what it cost, and
        record ``message.failed`` with it)."""
        await voice.discard()
        ai_tokens, estimated = spent.model_cost()
        boxes: list[Outbox] = []

        def record(connection: Connection) -> None:
            conversation = send.conversation
            box = self._c.events.outbox(
                connection, send.principal.account_id, send.principal.mode, self._c.clock.now()
            )
            failure = (
                {"code": error.code, "message": str(error)}
                if error is not None
                else {"code": "cancelled", "message": "The reply was cancelled."}
            )
            box.add(
                "message.failed",
                {"conversation_id": conversation.id, "avatar_id": conversation.avatar_id,
                 "content": send.content, "error": failure},
            )  # fmt: skip
            boxes.append(box)

        await send.reservation.release(
            ai_tokens, voice.characters, estimated=estimated, also=record
        )
        self._c.events.committed(*boxes)
        if send.attempt is not None:
            await self._c.idempotency.abandon(send.attempt)

    async def _generate(
        self, send: PreparedSend, spent: _Spent
    ) -> AsyncIterator[TextDelta | Usage]:
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
                    prompt = prompt_for(candidate.provider, send)
                except InvalidParameterError:
                    log.warning(
                        "fallback %s skipped: the prompt exceeds its context window", candidate.name
                    )
                    continue
            # The conversation's model name means something only to its own provider.
            own = candidate.name == send.conversation.ai_provider
            model = send.conversation.model if own else None
            meter = TokenMeter()
            generation = _Generation(candidate.provider, prompt, meter)
            spent.generation = generation  # what a stop from here on is charged
            request = ChatRequest(prompt, model, meter, grounded=bool(send.sources))
            stream = candidate.provider.stream(request)
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
                    if isinstance(event, TextDelta):
                        wrote = True
                        generation.parts.append(event.text)
                    yield event
            except ProviderError as error:
                c.health.failed("llm", candidate.name, error)
                if wrote:  # text already went out: no other provider may continue it
                    raise as_api_error(error, AIProviderError) from error
                last_error = error
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
        chain = send.tts
        if send.answered_tts is not None:
            # Later chunks of a reply keep the voice its first chunk was spoken in.
            chain = [v for v in send.tts if v.selected.name == send.answered_tts]
        for position, voiced in enumerate(chain):
            name = voiced.selected.name
            try:
                speech = await c.speech.synthesize(voiced.selected.provider, text, voiced.voice_id)
            except ProviderError as error:
                c.health.failed("tts", name, error)
                if position == len(chain) - 1:
                    raise as_api_error(error, TTSProviderError) from error
                continue
            c.health.succeeded("tts", name)
            send.answered_tts = name
            return speech
        raise AssertionError("an empty speech chain is never spoken")

    async def _store(
        self,
        send: PreparedSend,
        spent: _Spent,
        speech: Speech | None,
        clip: AudioClip | None,
        clips: list[AudioClip],
        *,
        interrupted: bool = False,
    ) -> dict[str, Any]:
        """Store the user message and the reply together, or nothing at all."""
        c = self._c
        now = c.clock.now()
        text, ai_tokens = spent.text, spent.ai_tokens
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
            stt_ms=send.heard.duration_ms if send.heard else 0,
            input=send.heard.input_json() if send.heard else None,
            interrupted=False,
            sources=None,
            safety=None,
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
            stt_ms=0,
            input=None,
            interrupted=interrupted,
            sources=send.sources,
            safety=send.verdict.safety if send.verdict else None,
            latency_ms=round((now - (send.started_at or now)).total_seconds() * 1000),
            created_at=now,
        )
        body = message_json(reply, clip, c.speech, send.base_url)
        user_body = message_json(user, None, c.speech, send.base_url)
        stored_body = wire_json(body)
        # A failed answer: no relevant knowledge, and the reply declines (failed_answers).
        failed = send.verdict is None and not send.sources and declines(text)

        def work(connection: Connection) -> None:
            # One atomic statement claims two sequence numbers and adds the usage; concurrent
            # sends to one conversation therefore never collide, on any backend.
            claimed = connection.execute(
                _CLAIM_SEQUENCE,
                {
                    "conversation_id": send.conversation.id,
                    "added_ai_tokens": ai_tokens,
                    "added_tts_characters": tts_chars,
                    "added_stt_ms": send.heard.duration_ms if send.heard else 0,
                    "failed": failed,
                    "updated": now,
                    "first": user.created_at,
                },
            ).first()
            if claimed is None:
                exists = connection.execute(_EXISTS, {"id": send.conversation.id}).first()
                if exists is None:
                    raise ConversationNotFoundError(f"No conversation {send.conversation.id!r}.")
                raise ended_error()
            user.seq, reply.seq = claimed[0] - 2, claimed[0] - 1
            if clips:
                connection.execute(_INSERT_CLIP, [column_values(each) for each in clips])
            connection.execute(_INSERT_MESSAGE, [column_values(user), column_values(reply)])
            if send.verdict is not None:
                # Recorded for the webhooks that emit safety actions (section 10).
                connection.execute(
                    _INSERT_SAFETY_EVENT,
                    {"id": new_id("sev"), "account_id": send.principal.account_id,
                     "mode": send.principal.mode, "avatar_id": send.conversation.avatar_id,
                     "conversation_id": send.conversation.id, "message_id": reply.id,
                     "action": send.verdict.safety["action"], "detail": send.verdict.safety,
                     "created_at": now},
                )  # fmt: skip
            escalated = False
            if send.verdict is not None and send.verdict.escalation is not None:
                marked = connection.execute(
                    _ESCALATE,
                    {"conversation_id": send.conversation.id, "reason": send.verdict.escalation},
                )
                escalated = marked.rowcount == 1
            send.reservation.commit_in(connection, ai_tokens, tts_chars)
            if send.attempt is not None:
                c.idempotency.complete(connection, send.attempt, 200, stored_body)
            boxes.append(
                self._record(connection, send, user, reply, user_body, body, escalated, now)
            )

        boxes: list[Outbox] = []
        await c.db.write_core(work)
        c.events.committed(*boxes)
        timings = current_timings.get()
        if timings is not None:
            for phase in ("ai", "tts"):
                if timings.phases.get(phase):
                    c.on_phase(phase, timings.phases[phase] / 1000.0)
        return body

    def _record(
        self,
        connection: Connection,
        send: PreparedSend,
        user: Message,
        reply: Message,
        user_body: dict[str, Any],
        body: dict[str, Any],
        escalated: bool,
        now: datetime,
    ) -> Outbox:
        """The send's roll-ups and events, in the transaction that stores it."""
        principal, conversation = send.principal, send.conversation
        account_id, mode, avatar_id = principal.account_id, principal.mode, conversation.avatar_id
        # Each message counts on the day it was stored: one upsert for the pair, two when a
        # send straddles midnight.
        days = [[user, reply]] if day_of(user.created_at) == day_of(now) else [[user], [reply]]
        for messages in days:
            add_activity(
                connection, account_id, mode, messages[-1].created_at, avatar_id,
                messages=len(messages),
                ai_tokens=sum(m.ai_tokens for m in messages),
                tts_characters=sum(m.tts_characters for m in messages),
                stt_ms=sum(m.stt_ms for m in messages),
                escalations=int(escalated and reply in messages),
            )  # fmt: skip
        add_latency(connection, account_id, mode, now, reply.latency_ms or 0)
        box = self._c.events.outbox(connection, account_id, mode, now)
        for message_body in (user_body, body):
            box.add(
                "message.created",
                {"conversation_id": conversation.id, "avatar_id": avatar_id,
                 "message": message_body},
            )  # fmt: skip
        verdict = send.verdict
        if verdict is not None:
            about = {"conversation_id": conversation.id, "avatar_id": avatar_id,
                     "message_id": reply.id, **verdict.safety}  # fmt: skip
            action = verdict.safety["action"]
            name = "safety.escalation" if action == "escalated" else f"safety.{action}"
            box.add(name, about)
            if escalated:
                box.add(
                    "conversation.escalated",
                    {"conversation_id": conversation.id, "avatar_id": avatar_id,
                     "reason": verdict.escalation, "message_id": reply.id},
                )  # fmt: skip
        return box
