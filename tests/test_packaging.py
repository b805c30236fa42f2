"""Packaging: one version, a licence that matches the metadata, and a Dockerfile and compose
file that name only settings, commands and paths that exist (no container engine can pull
images here, so their words are checked instead)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from avatarium import __version__
from avatarium.cli import build_parser
from avatarium.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_the_version_is_in_one_place() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert importlib.metadata.version("avatarium") == __version__


def test_the_licence_file_matches_the_metadata() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_container_files_name_real_settings_commands_and_paths() -> None:
    settings = {f"AVATARIUM_{name.upper()}" for name in Settings.model_fields}
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for name in ("Dockerfile", "docker-compose.yml"):
        text = (ROOT / name).read_text()
        for setting in re.findall(r"AVATARIUM_[A-Z0-9_]+", text):
            assert setting in settings, f"{name} names an unknown setting {setting}"
        for command in re.findall(r'"avatarium", "([a-z-]+)"', text):
            assert command in commands, f"{name} runs an unknown command {command}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE):
        for source in sources.split():
            assert (ROOT / source).exists(), f"Dockerfile copies a missing {source}"
    assert "USER avatarium" in dockerfile  # not root
    assert "/health/live" in dockerfile
    docs = (ROOT / "docs" / "deployment.md").read_text()
    assert "docker compose up" in docs and "Dockerfile" in docs


def test_postgres_redis_and_s3_are_optional_extras() -> None:
    import subprocess
    import sys

    requires = importlib.metadata.requires("avatarium") or []
    for package, extra in (("asyncpg", "postgres"), ("redis", "redis"), ("boto3", "s3")):
        lines = [r for r in requires if re.match(rf"{package}\b(?!-)", r)]
        assert lines and all(f'extra == "{extra}"' in r for r in lines), lines
    # The embedded setup imports neither.
    probe = (
        "import sys, avatarium.app; "
        "print(*(m in sys.modules for m in ('redis', 'asyncpg', 'boto3', 'botocore')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"] * 4
    assert ".[postgres,redis,s3]" in (ROOT / "Dockerfile").read_text()
