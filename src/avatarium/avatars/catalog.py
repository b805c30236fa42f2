"""Avatar presets: the shipped ones plus an operator's data file (same JSON shape).

An operator file may add presets or replace a shipped one by reusing its ``id``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRESETS_FILE = Path(__file__).with_name("presets.json")
STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "avatars"
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class AvatarFileError(ValueError):
    """An avatar data file is unreadable or malformed."""


@dataclass(frozen=True, slots=True)
class Avatar:
    """One preset character."""

    id: str
    name: str
    description: str
    personality: str
    voices: dict[str, str]
    defaults: dict[str, str]
    face: str | None = None  # a preset whose face this avatar wears
    image_url: str | None = None  # or an image of its own
    greeting: str | None = None
    model: str | None = None  # the AI provider's model, when the avatar names one
    topics_to_avoid: tuple[str, ...] = ()
    escalation: dict[str, Any] | None = None

    @property
    def has_rules(self) -> bool:
        return bool(self.topics_to_avoid or self.escalation)

    def as_json(self, base_url: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "avatar",
            "owner": "preset",
            "name": self.name,
            "description": self.description,
            "personality": self.personality,
            "voices": dict(self.voices),
            "defaults": dict(self.defaults),
            "model_url": self.model_url(base_url),
            "thumbnail_url": self.model_url(base_url),
        }

    def model_url(self, base_url: str) -> str:
        if self.image_url is not None:
            return self.image_url
        face = self.face or self.id
        name = face if (STATIC_DIR / f"{face}.svg").exists() else "default"
        return f"{base_url}/static/avatars/{name}.svg"


def _parse(entry: Any, source: Path) -> Avatar:
    if not isinstance(entry, dict):
        raise AvatarFileError(f"{source}: every avatar must be an object")
    try:
        avatar = Avatar(
            id=str(entry["id"]),
            name=str(entry["name"]),
            description=str(entry.get("description", "")),
            personality=str(entry["personality"]),
            voices={str(k): str(v) for k, v in dict(entry.get("voices", {})).items()},
            defaults={str(k): str(v) for k, v in dict(entry.get("defaults", {})).items()},
        )
    except KeyError as exc:
        raise AvatarFileError(f"{source}: avatar is missing {exc.args[0]!r}") from exc
    if not _ID.match(avatar.id):
        raise AvatarFileError(f"{source}: bad avatar id {avatar.id!r} (use a-z, 0-9 and '-')")
    unknown = set(avatar.defaults) - {"ai_provider", "tts_provider", "stt_provider", "language"}
    if unknown:
        raise AvatarFileError(f"{source}: unknown defaults {sorted(unknown)} in {avatar.id}")
    return avatar


def _read(path: Path) -> list[Avatar]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise AvatarFileError(f"cannot read avatar file {path}: {exc}") from exc
    if not isinstance(raw, list):
        raise AvatarFileError(f"{path}: expected a JSON list of avatars")
    return [_parse(entry, path) for entry in raw]


class AvatarCatalog:
    """Presets by id, in a stable order (shipped first, then the operator's)."""

    def __init__(self, extra_file: Path | None = None) -> None:
        self._avatars: dict[str, Avatar] = {}
        for avatar in _read(PRESETS_FILE):
            self._avatars[avatar.id] = avatar
        if extra_file is not None:
            for avatar in _read(extra_file):
                self._avatars[avatar.id] = avatar

    def get(self, avatar_id: str) -> Avatar | None:
        return self._avatars.get(avatar_id)

    def all(self) -> list[Avatar]:
        return list(self._avatars.values())
