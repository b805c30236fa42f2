"""Custom avatars: create, read, list, update and delete, scoped to one account and mode;
and the one lookup every other part uses, presets and custom avatars alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from avatarium.avatars.catalog import Avatar, AvatarCatalog
from avatarium.avatars.models import CustomAvatar
from avatarium.avatars.schemas import AvatarSpec
from avatarium.conversations.models import Conversation
from avatarium.core.clock import Clock, rfc3339
from avatarium.core.errors import AvatarNotFoundError, PermissionDeniedError
from avatarium.core.ids import new_id
from avatarium.keys.service import Principal
from avatarium.providers.registry import ProviderRegistry
from avatarium.providers.selection import select_llm, select_stt, select_tts
from avatarium.storage.db import Database
from avatarium.webhooks.events import EventLog, Outbox

PREFIX = "avt_"
# The fields of a custom avatar a request may set, with their empty values.
DEFAULTS: dict[str, Any] = {
    "description": "", "personality": None, "greeting": None, "traits": [], "tone": None,
    "language": None, "voices": {}, "ai_provider": None, "ai_model": None,
    "tts_provider": None, "stt_provider": None, "topics_to_avoid": [], "escalation": None,
    "appearance": None, "metadata": {},
}  # fmt: skip


def not_found(avatar_id: str) -> AvatarNotFoundError:
    return AvatarNotFoundError(f"No avatar {avatar_id!r}.", details={"field": "avatar_id"})


def read_only(avatar_id: str) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"{avatar_id} is a preset; presets are read-only. Create an avatar of your own.",
        details={"reason": "preset_read_only"},
    )


def default_personality(row: CustomAvatar) -> str:
    """A system prompt for an avatar created without one, from what it says about itself."""
    parts = [f"You are {row.name}."]
    if row.description:
        parts.append(row.description.rstrip(".") + ".")
    if row.traits:
        parts.append(f"You are {', '.join(row.traits)}.")
    if row.tone:
        parts.append(f"Your tone is {row.tone}.")
    parts.append(
        "You answer clearly in two or three short sentences, without lists or markdown, "
        "because everything you write is spoken aloud."
    )
    return " ".join(parts)


def as_avatar(row: CustomAvatar) -> Avatar:
    """A custom avatar seen the way conversations see presets."""
    defaults = {
        name: value
        for name in ("ai_provider", "tts_provider", "stt_provider", "language")
        if (value := getattr(row, name))
    }
    appearance = row.appearance or {}
    return Avatar(
        id=row.id,
        name=row.name,
        description=row.description,
        personality=row.personality or default_personality(row),
        voices=dict(row.voices or {}),
        defaults=defaults,
        face=appearance.get("preset"),
        image_url=appearance.get("model_url"),
        greeting=row.greeting,
        model=row.ai_model,
        topics_to_avoid=tuple(row.topics_to_avoid or ()),
        escalation=row.escalation,
    )


def custom_json(row: CustomAvatar, base_url: str) -> dict[str, Any]:
    avatar = as_avatar(row)
    return {
        "id": row.id,
        "object": "avatar",
        "owner": "account",
        "name": row.name,
        "description": row.description,
        "personality": row.personality,
        "greeting": row.greeting,
        "traits": list(row.traits or []),
        "tone": row.tone,
        "language": row.language,
        "voices": dict(row.voices or {}),
        "ai_provider": row.ai_provider,
        "ai_model": row.ai_model,
        "tts_provider": row.tts_provider,
        "stt_provider": row.stt_provider,
        "topics_to_avoid": list(row.topics_to_avoid or []),
        "escalation": row.escalation,
        "appearance": row.appearance,
        "metadata": dict(row.metadata_ or {}),
        "defaults": dict(avatar.defaults),
        "model_url": avatar.model_url(base_url),
        "thumbnail_url": avatar.model_url(base_url),
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


class AvatarService:
    """Presets from the catalog, custom avatars from the database."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        catalog: AvatarCatalog,
        providers: ProviderRegistry,
        events: EventLog,
    ) -> None:
        self.db = db
        self.clock = clock
        self.catalog = catalog
        self.providers = providers
        self.events = events

    # The lookup everything else uses.

    async def resolve(self, principal: Principal | None, avatar_id: str) -> Avatar | None:
        """The preset, or the caller's own avatar, ``avatar_id``; None when neither."""
        preset = self.catalog.get(avatar_id)
        if preset is not None or not avatar_id.startswith(PREFIX) or principal is None:
            return preset
        row = await self.db.read(lambda session: self._owned(session, principal, avatar_id))
        return as_avatar(row) if row is not None else None

    @staticmethod
    def _owned(session: Session, principal: Principal, avatar_id: str) -> CustomAvatar | None:
        return session.execute(
            select(CustomAvatar).where(
                CustomAvatar.id == avatar_id,
                CustomAvatar.account_id == principal.account_id,
                CustomAvatar.mode == principal.mode,
            )
        ).scalar_one_or_none()

    # The resource.

    def _check_providers(self, principal: Principal, spec: AvatarSpec) -> None:
        values = spec.values
        if values.get("ai_provider"):
            select_llm(self.providers, values["ai_provider"], principal.mode)
        if values.get("tts_provider"):
            select_tts(self.providers, values["tts_provider"], principal.mode)
        if values.get("stt_provider"):
            select_stt(self.providers, values["stt_provider"], principal.mode)

    async def names(self, principal: Principal, avatar_ids: list[str]) -> dict[str, str]:
        """The names of these avatars (presets, and the caller's own; others are left out)."""
        names = {a: p.name for a in avatar_ids if (p := self.catalog.get(a)) is not None}
        custom = [a for a in avatar_ids if a not in names]
        if custom:
            rows = await self.db.read(
                lambda session: session.execute(
                    select(CustomAvatar.id, CustomAvatar.name).where(
                        CustomAvatar.id.in_(custom),
                        CustomAvatar.account_id == principal.account_id,
                        CustomAvatar.mode == principal.mode,
                    )
                ).all()
            )
            names.update({str(avatar_id): str(name) for avatar_id, name in rows})
        return names

    async def exists(self, avatar_id: str) -> bool:
        """Whether a custom avatar with this id exists, whoever owns it (the embeddable
        page is served for it; its face needs a client token of its conversation)."""
        if not avatar_id.startswith(PREFIX):
            return False
        return await self.db.read(lambda session: session.get(CustomAvatar, avatar_id)) is not None

    async def create(self, principal: Principal, spec: AvatarSpec, base_url: str) -> dict[str, Any]:
        self._check_providers(principal, spec)
        now = self.clock.now()
        fields = {**DEFAULTS, **{k: v for k, v in spec.values.items() if v is not None}}
        row = CustomAvatar(
            id=new_id("avt"),
            account_id=principal.account_id,
            mode=principal.mode,
            name=spec.values["name"],
            created_at=now,
            updated_at=now,
            **{k: v for k, v in fields.items() if k != "metadata" and k != "name"},
            metadata_=fields["metadata"],
        )
        body = custom_json(row, base_url)

        def work(session: Session) -> None:
            session.add(row)

        await self.db.write(work)
        return body

    async def list_avatars(self, principal: Principal | None, base_url: str) -> dict[str, Any]:
        data = [a.as_json(base_url) for a in self.catalog.all()]
        if principal is not None:
            rows = await self.db.read(
                lambda session: list(
                    session.execute(
                        select(CustomAvatar)
                        .where(
                            CustomAvatar.account_id == principal.account_id,
                            CustomAvatar.mode == principal.mode,
                        )
                        .order_by(CustomAvatar.created_at, CustomAvatar.id)
                    ).scalars()
                )
            )
            data += [custom_json(row, base_url) for row in rows]
        return {"object": "list", "data": data, "has_more": False, "next_cursor": None}

    async def get(
        self, principal: Principal | None, avatar_id: str, base_url: str
    ) -> dict[str, Any]:
        preset = self.catalog.get(avatar_id)
        if preset is not None:
            return preset.as_json(base_url)
        if principal is None:
            raise not_found(avatar_id)
        row = await self.db.read(lambda session: self._owned(session, principal, avatar_id))
        if row is None:
            raise not_found(avatar_id)
        return custom_json(row, base_url)

    async def update(
        self, principal: Principal, avatar_id: str, spec: AvatarSpec, base_url: str
    ) -> dict[str, Any]:
        if self.catalog.get(avatar_id) is not None:
            raise read_only(avatar_id)
        self._check_providers(principal, spec)
        now = self.clock.now()

        def work(session: Session) -> tuple[dict[str, Any], Outbox]:
            row = self._owned(session, principal, avatar_id)
            if row is None:
                raise not_found(avatar_id)
            for name, value in spec.values.items():
                if value is None:
                    value = DEFAULTS.get(name)
                setattr(row, "metadata_" if name == "metadata" else name, value)
            row.updated_at = now
            body = custom_json(row, base_url)
            box = self.events.outbox(session.connection(), row.account_id, row.mode, now)
            box.add("avatar.updated", {"avatar": body, "changed": sorted(spec.values)})
            return body, box

        body, box = await self.db.write(work)
        self.events.committed(box)
        return body

    async def delete(self, principal: Principal, avatar_id: str) -> dict[str, Any]:
        """Delete the avatar and end its conversations (they stay readable)."""
        if self.catalog.get(avatar_id) is not None:
            raise read_only(avatar_id)
        now: datetime = self.clock.now()

        deleted = {"id": avatar_id, "object": "avatar", "deleted": True}

        def work(session: Session) -> Outbox:
            row = self._owned(session, principal, avatar_id)
            if row is None:
                raise not_found(avatar_id)
            ended = session.execute(
                update(Conversation)
                .where(
                    Conversation.account_id == principal.account_id,
                    Conversation.mode == principal.mode,
                    Conversation.avatar_id == avatar_id,
                    Conversation.status != "ended",
                )
                .values(status="ended", ended_at=now, updated_at=now)
                .returning(Conversation.id)
                .execution_options(synchronize_session=False)
            ).scalars()
            box = self.events.outbox(session.connection(), row.account_id, row.mode, now)
            for conversation_id in list(ended):
                box.add(
                    "conversation.ended",
                    {"conversation": {"id": conversation_id, "object": "conversation",
                                      "avatar_id": avatar_id, "status": "ended",
                                      "ended_at": rfc3339(now)},
                     "reason": "avatar_deleted"},
                )  # fmt: skip
            box.add("avatar.deleted", {"avatar": deleted})
            session.delete(row)
            return box

        self.events.committed(await self.db.write(work))
        return deleted
