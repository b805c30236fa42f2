"""Conversations: create, read, list, end and delete, scoped to one account and mode."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, and_, bindparam, delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from avatarium.analytics.rollup import add_activity
from avatarium.avatars.catalog import Avatar
from avatarium.avatars.service import AvatarService
from avatarium.conversations.idempotency import Attempt, IdempotencyStore
from avatarium.conversations.models import Conversation, Message
from avatarium.conversations.prompt import Turn
from avatarium.conversations.schemas import (
    NewConversation,
    conversation_json,
    message_event,
    message_json,
)
from avatarium.core.clock import Clock
from avatarium.core.errors import (
    AvatarNotFoundError,
    ConversationNotFoundError,
    InvalidParameterError,
    MessageNotFoundError,
)
from avatarium.core.ids import new_id
from avatarium.core.secrets import Sealer
from avatarium.core.settings import Settings
from avatarium.core.wire import wire_json
from avatarium.keys.service import Principal
from avatarium.knowledge.service import KnowledgeService
from avatarium.providers.byok import ByokProviders, seal
from avatarium.providers.errors import ProviderError
from avatarium.providers.fallback import ProviderHealth
from avatarium.providers.registry import ProviderRegistry
from avatarium.providers.selection import Selected, select_llm, select_stt, select_tts
from avatarium.providers.tts.base import TTSProvider
from avatarium.speech.models import AudioClip
from avatarium.speech.service import SpeechService
from avatarium.storage.base import from_row, table_of
from avatarium.storage.db import Database
from avatarium.usage.ledger import UsageLedger, period_of
from avatarium.webhooks.events import EventLog, Outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Greeting:
    """A new conversation's first message, and its audio clip when it was spoken."""

    message: Message
    clip: AudioClip | None


def owned(query: Select[Any], principal: Principal) -> Select[Any]:
    """Restrict a conversation query to the caller's account and mode."""
    return query.where(
        Conversation.account_id == principal.account_id, Conversation.mode == principal.mode
    )


class ConversationService:
    """Conversation resources. Sending lives in :mod:`avatarium.conversations.replies`."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        avatars: AvatarService,
        knowledge: KnowledgeService,
        providers: ProviderRegistry,
        speech: SpeechService,
        idempotency: IdempotencyStore,
        sealer: Sealer,
        health: ProviderHealth,
        events: EventLog,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.avatars = avatars
        self.knowledge = knowledge
        self.providers = providers
        self.speech = speech
        self.idempotency = idempotency
        self.sealer = sealer
        self.health = health
        self.events = events
        # Told of a stored reply's phases (name, seconds): the metrics time them.
        self.on_phase: Callable[[str, float], None] = lambda _phase, _seconds: None
        self.byok = ByokProviders(providers, settings)

    def render(self, conversation: Conversation) -> dict[str, Any]:
        return conversation_json(conversation, self.clock.now(), self.settings.idle_after_s)

    async def create(
        self,
        principal: Principal,
        new: NewConversation,
        attempt: Attempt | None,
        base_url: str,
    ) -> dict[str, Any]:
        byok = new.byok
        # Parameters before lookups (the documented check order): explicit providers first.
        if new.ai_provider is not None and byok is None:
            select_llm(self.providers, new.ai_provider, principal.mode)
        if new.tts_provider is not None:
            select_tts(self.providers, new.tts_provider, principal.mode)
        if new.stt_provider is not None:
            select_stt(self.providers, new.stt_provider, principal.mode)
        avatar = await self.avatars.resolve(principal, new.avatar_id)
        if avatar is None:
            raise AvatarNotFoundError(
                f"No avatar {new.avatar_id!r}.", details={"field": "avatar_id"}
            )
        ai_name = (
            (byok.provider if byok else None)
            or new.ai_provider
            or (avatar.defaults.get("ai_provider", self.settings.default_ai_provider))
        )
        tts_name = new.tts_provider or avatar.defaults.get(
            "tts_provider", self.settings.default_tts_provider
        )
        own_model = avatar.model if ai_name == avatar.defaults.get("ai_provider") else None
        if byok is not None and principal.mode == "live":
            default_model = self.byok.get(byok).default_model
        else:
            default_model = select_llm(
                self.providers, ai_name, principal.mode
            ).provider.default_model
        tts = select_tts(self.providers, tts_name, principal.mode)
        voice_id = new.voice_id or avatar.voices.get(tts_name) or tts.provider.default_voice
        if new.voice_id is not None and tts.name == tts_name:
            await self.speech.require_voice(tts.provider, tts_name, voice_id, "voice_id")
        now = self.clock.now()
        conversation = Conversation(
            id=new_id("conv"),
            account_id=principal.account_id,
            mode=principal.mode,
            avatar_id=avatar.id,
            status="active",
            ai_provider=ai_name,
            tts_provider=tts_name,
            voice_id=voice_id,
            model=new.model or own_model or default_model,
            # Empty: the avatar's personality as it is at each send.
            system_prompt=new.system_prompt or "",
            metadata_=new.metadata,
            message_count=0,
            ai_tokens=0,
            tts_characters=0,
            created_at=now,
            updated_at=now,
            byok_secret=seal(self.sealer, byok) if byok is not None else None,
            stt_ms=0,
            escalated=False,
            escalation_reason=None,
            stt_provider=new.stt_provider
            or avatar.defaults.get("stt_provider", self.settings.default_stt_provider),
            language=new.language or avatar.defaults.get("language"),
        )
        greeting = None
        if avatar.greeting:
            greeting = await self._greeting(conversation, avatar, tts, tts_name, avatar.greeting)
            conversation.message_count = 1
            conversation.tts_characters = greeting.message.tts_characters
            conversation.first_message_at = conversation.last_message_at = now
        body_out = self.render(conversation)

        def work(session: Session) -> Outbox:
            session.add(conversation)
            if greeting is not None:
                session.flush()  # the clip and message rows refer to the conversation
                if greeting.clip is not None:
                    session.add(greeting.clip)
                session.add(greeting.message)
                if greeting.message.tts_characters:
                    # Spoken, so counted in tts_characters; not a message of the quota.
                    UsageLedger.add_in(
                        session.connection(), principal.account_id, period_of(now), 0, 0,
                        greeting.message.tts_characters,
                    )  # fmt: skip
            if attempt is not None:
                self.idempotency.complete(session, attempt, 200, wire_json(body_out))
            connection = session.connection()
            spoken = greeting.message.tts_characters if greeting is not None else 0
            add_activity(
                connection, principal.account_id, principal.mode, now, avatar.id,
                conversations=1, messages=int(greeting is not None), tts_characters=spoken,
            )  # fmt: skip
            box = self.events.outbox(connection, principal.account_id, principal.mode, now)
            box.add("conversation.started", {"conversation": body_out})
            if greeting is not None:
                first = greeting.message
                data = message_event(conversation, first, greeting.clip, self.speech, base_url)
                box.add("message.created", data)
            return box

        try:
            box = await self.db.write(work)
        except BaseException:
            if greeting is not None and greeting.clip is not None:
                await self.speech.store.delete(greeting.clip.storage_key)
            raise
        self.events.committed(box)
        return body_out

    async def _greeting(
        self,
        conversation: Conversation,
        avatar: Avatar,
        tts: Selected[TTSProvider],
        tts_name: str,
        text: str,
    ) -> _Greeting:
        """The avatar's greeting as the conversation's first assistant message, spoken in
        its voice. Speech that fails leaves the greeting as text: a conversation is not
        refused because the speech provider is down."""
        message = Message(
            id=new_id("msg"), conversation_id=conversation.id, seq=0, role="assistant",
            content=text, reply_to=None, audio_id=None, speech=None, ai_provider=None,
            tts_provider=tts.name, ai_tokens=0, tts_characters=0, stt_ms=0, input=None,
            interrupted=False, sources=None, safety=None, created_at=conversation.created_at,
        )  # fmt: skip
        voice_id = conversation.voice_id or tts.provider.default_voice
        if tts.name != tts_name:  # the sandbox's stand-in speaks in the avatar's voice for it
            voice_id = avatar.voices.get(tts.name) or tts.provider.default_voice
        if not tts.provider.produces_audio:
            message.speech = {"provider": tts.name, "voice_id": voice_id, "text": text}
            return _Greeting(message, None)
        try:
            speech = await self.speech.synthesize(tts.provider, text, voice_id)
        except ProviderError as error:
            log.warning("greeting of %s not spoken: %s", conversation.id, error.category.value)
            return _Greeting(message, None)
        clip = await self.speech.save(
            speech, account_id=conversation.account_id, mode=conversation.mode,
            conversation_id=conversation.id,
        )  # fmt: skip
        message.audio_id = clip.id
        message.tts_characters = speech.characters
        return _Greeting(message, clip)

    async def require(self, principal: Principal, conversation_id: str) -> Conversation:
        """The conversation, or 404 ``conversation_not_found`` for this key's account/mode."""
        return await self.db.read(lambda session: _owned(session, principal, conversation_id))

    async def load_with_history(
        self, principal: Principal, conversation_id: str
    ) -> tuple[Conversation, list[Turn]]:
        """The conversation and its newest turns (at most ``history_max_messages``), oldest
        first, in one unit of work: a send reads a bounded slice through the
        (conversation, seq) index, however long the conversation is."""
        limit = self.settings.history_max_messages

        params = {"account_id": principal.account_id, "mode": principal.mode, "id": conversation_id}

        def work(connection: Connection) -> tuple[Conversation, list[Turn]]:
            row = connection.execute(_OWNED_ROW, params).first()
            if row is None:
                raise _not_found(conversation_id)
            conversation = from_row(Conversation, row)
            if limit == 0 or conversation.message_count == 0:
                return conversation, []
            rows = connection.execute(
                _HISTORY, {"conversation_id": conversation.id, "limit": limit}
            ).all()
            return conversation, [Turn(role, content) for role, content in reversed(rows)]

        return await self.db.read_core(work)

    async def get(
        self, principal: Principal, conversation_id: str, base_url: str
    ) -> dict[str, Any]:
        def work(session: Session) -> tuple[Conversation, list[tuple[Message, AudioClip | None]]]:
            conversation = _owned(session, principal, conversation_id)
            rows = session.execute(
                _messages_with_audio()
                .where(Message.conversation_id == conversation.id)
                .order_by(Message.seq)
            ).all()
            return conversation, [(m, c) for m, c in rows]

        conversation, rows = await self.db.read(work)
        body = self.render(conversation)
        body["messages"] = [message_json(m, c, self.speech, base_url) for m, c in rows]
        return body

    async def list_conversations(
        self,
        principal: Principal,
        *,
        limit: int,
        status: str | None = None,
        avatar_id: str | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        query = owned(select(Conversation), principal)
        if avatar_id is not None:
            query = query.where(Conversation.avatar_id == avatar_id)
        cutoff = self.clock.now() - timedelta(seconds=self.settings.idle_after_s)
        if status == "ended":
            query = query.where(Conversation.status == "ended")
        elif status == "active":
            query = query.where(Conversation.status == "active", Conversation.updated_at > cutoff)
        elif status == "idle":
            query = query.where(Conversation.status == "active", Conversation.updated_at <= cutoff)

        def work(session: Session) -> list[Conversation]:
            nonlocal query
            if cursor is not None:
                anchor = session.execute(
                    owned(select(Conversation.created_at), principal).where(
                        Conversation.id == cursor
                    )
                ).scalar_one_or_none()
                if anchor is None:
                    raise InvalidParameterError(
                        "starting_after",
                        "not_allowed",
                        "starting_after must be the id of a conversation in this list.",
                    )
                query = query.where(
                    (Conversation.created_at < anchor)
                    | and_(Conversation.created_at == anchor, Conversation.id < cursor)
                )
            ordered = query.order_by(Conversation.created_at.desc(), Conversation.id.desc())
            return list(session.execute(ordered.limit(limit + 1)).scalars())

        rows = await self.db.read(work)
        return page([self.render(c) for c in rows], limit)

    async def end(self, principal: Principal, conversation_id: str) -> dict[str, Any]:
        now = self.clock.now()

        def work(session: Session) -> tuple[dict[str, Any], Outbox | None]:
            conversation = _owned(session, principal, conversation_id, for_update=True)
            if conversation.status == "ended":
                return self.render(conversation), None  # repeating it is harmless, and quiet
            conversation.status = "ended"
            conversation.ended_at = now
            conversation.updated_at = now
            body = self.render(conversation)
            connection = session.connection()
            box = self.events.outbox(connection, principal.account_id, principal.mode, now)
            box.add("conversation.ended", {"conversation": body, "reason": "ended"})
            return body, box

        body, box = await self.db.write(work)
        self.events.committed(box)
        return body

    async def mark_interrupted(
        self, principal: Principal, conversation_id: str, message_id: str
    ) -> None:
        """Mark a stored reply as spoken over (barge-in after all its audio had been sent:
        its text stays whole, because all of it went out)."""

        def work(session: Session) -> None:
            conversation = _owned(session, principal, conversation_id)
            message = session.get(Message, message_id)
            if message is not None and message.conversation_id == conversation.id:
                message.interrupted = True

        await self.db.write(work)

    async def delete(self, principal: Principal, conversation_id: str) -> dict[str, Any]:
        def work(session: Session) -> list[str]:
            conversation = _owned(session, principal, conversation_id, for_update=True)
            keys = session.execute(
                select(AudioClip.storage_key).where(AudioClip.conversation_id == conversation.id)
            ).scalars()
            found = list(keys)
            session.execute(delete(Message).where(Message.conversation_id == conversation.id))
            session.execute(delete(AudioClip).where(AudioClip.conversation_id == conversation.id))
            session.execute(delete(Conversation).where(Conversation.id == conversation.id))
            return found

        keys = await self.db.write(work)
        # After the commit: a failed delete must not leave rows without audio (gc takes what
        # is left behind).
        await self.speech.store.delete_many(keys)
        return {"id": conversation_id, "object": "conversation", "deleted": True}

    async def list_messages(
        self,
        principal: Principal,
        conversation_id: str,
        base_url: str,
        *,
        limit: int,
        order: str = "asc",
        cursor: str | None = None,
    ) -> dict[str, Any]:

        def work(session: Session) -> list[tuple[Message, AudioClip | None]]:
            conversation = _owned(session, principal, conversation_id)
            query = _messages_with_audio().where(Message.conversation_id == conversation.id)
            if cursor is not None:
                anchor = session.execute(
                    select(Message.seq).where(
                        Message.conversation_id == conversation.id, Message.id == cursor
                    )
                ).scalar_one_or_none()
                if anchor is None:
                    raise InvalidParameterError(
                        "starting_after",
                        "not_allowed",
                        "starting_after must be the id of a message in this list.",
                    )
                query = query.where(
                    Message.seq > anchor if order == "asc" else Message.seq < anchor
                )
            ordering = Message.seq.asc() if order == "asc" else Message.seq.desc()
            rows = session.execute(query.order_by(ordering).limit(limit + 1)).all()
            return [(m, c) for m, c in rows]

        rows = await self.db.read(work)
        return page([message_json(m, c, self.speech, base_url) for m, c in rows], limit)

    async def get_message(
        self, principal: Principal, conversation_id: str, message_id: str, base_url: str
    ) -> dict[str, Any]:
        def work(session: Session) -> tuple[Message, AudioClip | None] | None:
            conversation = _owned(session, principal, conversation_id)
            row = session.execute(
                _messages_with_audio().where(
                    Message.conversation_id == conversation.id, Message.id == message_id
                )
            ).first()
            return (row[0], row[1]) if row is not None else None

        found = await self.db.read(work)
        if found is None:
            raise MessageNotFoundError(
                f"No message {message_id!r} in this conversation.",
                details={"field": "message_id"},
            )
        return message_json(found[0], found[1], self.speech, base_url)


# Hot-path statements, built once (building one costs more than running it).
_OWNED = select(Conversation).where(
    Conversation.account_id == bindparam("account_id"),
    Conversation.mode == bindparam("mode"),
    Conversation.id == bindparam("id"),
)
_OWNED_FOR_UPDATE = _OWNED.with_for_update()
_CONVERSATIONS = table_of(Conversation)
_OWNED_ROW = select(_CONVERSATIONS).where(
    _CONVERSATIONS.c.account_id == bindparam("account_id"),
    _CONVERSATIONS.c.mode == bindparam("mode"),
    _CONVERSATIONS.c.id == bindparam("id"),
)
_HISTORY = (
    select(Message.role, Message.content)
    .where(Message.conversation_id == bindparam("conversation_id"))
    .order_by(Message.seq.desc())
    .limit(bindparam("limit"))
)


def _messages_with_audio() -> Select[Message, AudioClip | None]:
    """Messages with their stored clip, if any."""
    return select(Message, AudioClip).outerjoin(AudioClip, AudioClip.id == Message.audio_id)


def _owned(
    session: Session, principal: Principal, conversation_id: str, *, for_update: bool = False
) -> Conversation:
    """The caller's conversation, or 404."""
    params = {"account_id": principal.account_id, "mode": principal.mode, "id": conversation_id}
    query = _OWNED_FOR_UPDATE if for_update else _OWNED
    conversation: Conversation | None = session.execute(query, params).scalar_one_or_none()
    if conversation is None:
        raise _not_found(conversation_id)
    return conversation


def _not_found(conversation_id: str) -> ConversationNotFoundError:
    return ConversationNotFoundError(
        f"No conversation {conversation_id!r}.", details={"field": "conversation_id"}
    )


def page(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """A list envelope from ``limit + 1`` fetched items."""
    has_more = len(items) > limit
    data = items[:limit]
    return {
        "object": "list",
        "data": data,
        "has_more": has_more,
        "next_cursor": data[-1]["id"] if has_more and data else None,
    }
