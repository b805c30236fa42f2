"""Operators extend the presets with a data file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avatarium.avatars.catalog import AvatarCatalog, AvatarFileError


def test_operator_file_adds_and_replaces_presets(tmp_path: Path) -> None:
    extra = tmp_path / "avatars.json"
    extra.write_text(
        json.dumps(
            [
                {
                    "id": "zed-100",
                    "name": "Zed",
                    "personality": "You are Zed.",
                    "voices": {"espeak": "en-gb"},
                    "defaults": {"tts_provider": "espeak"},
                },
                {"id": "aria-001", "name": "Aria Two", "personality": "You are Aria, renewed."},
            ]
        )
    )
    catalog = AvatarCatalog(extra)
    zed = catalog.get("zed-100")
    assert zed is not None and zed.voices == {"espeak": "en-gb"}
    aria = catalog.get("aria-001")
    assert aria is not None and aria.name == "Aria Two"
    assert [a.id for a in catalog.all()][:4] == ["aria-001", "max-002", "luna-003", "kai-004"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "cannot read"),
        ('{"id": "x"}', "JSON list"),
        ('[{"id": "x"}]', "missing 'name'"),
        ('[{"id": "Bad Id", "name": "n", "personality": "p"}]', "bad avatar id"),
        (
            '[{"id": "ok", "name": "n", "personality": "p", "defaults": {"colour": "red"}}]',
            "unknown defaults",
        ),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    extra = tmp_path / "avatars.json"
    extra.write_text(content)
    with pytest.raises(AvatarFileError, match=message):
        AvatarCatalog(extra)
