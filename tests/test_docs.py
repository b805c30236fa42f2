"""The docs must keep up: every error code, setting, CLI command and route is documented."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from starlette.routing import Mount, Route, WebSocketRoute

from avatarium.app import create_app
from avatarium.cli import build_parser
from avatarium.core.errors import all_error_classes
from avatarium.core.settings import Settings
from tests.conftest import make_settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_every_error_code_is_documented() -> None:
    text = read("errors.md")
    codes = {cls.code for cls in all_error_classes()}
    assert len(codes) >= 20
    missing = sorted(code for code in codes if f"`{code}`" not in text)
    assert not missing, f"undocumented error codes: {missing}"


def test_every_setting_is_documented() -> None:
    text = read("configuration.md")
    names = [f"AVATARIUM_{name.upper()}" for name in Settings.model_fields]
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, f"undocumented settings: {missing}"


def _commands(
    parser: argparse.ArgumentParser, prefix: str = "avatarium"
) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                options = [
                    o
                    for a in sub._actions
                    for o in a.option_strings
                    if o.startswith("--") and o != "--help"
                ]
                found.append((f"{prefix} {name}", options))
                found.extend(_commands(sub, f"{prefix} {name}"))
    return found


def test_every_cli_command_and_option_is_documented() -> None:
    text = read("cli.md")
    commands = _commands(build_parser())
    assert len(commands) >= 8
    for command, options in commands:
        assert command in text, f"undocumented command: {command}"
        for option in options:
            assert option in text, f"undocumented option {option} of {command}"


def test_every_route_is_documented(tmp_path: Path) -> None:
    text = read("api.md")
    app = create_app(make_settings(tmp_path))
    paths = [r.path for r in app.routes if isinstance(r, Route | WebSocketRoute)]
    assert len(paths) >= 17
    for path in paths:
        pattern = re.sub(r"\\\{[a-z_]+\\\}", r"\\{[a-z_]+\\}", re.escape(path))
        assert re.search(pattern, text), f"undocumented route: {path}"
    assert any(isinstance(r, Mount) for r in app.routes)


def test_readme_starts_with_the_two_commands() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    first = readme[: readme.index("## A 60-second tour")]
    assert "make run" in first and "make test" in first


def test_every_provider_has_a_page(tmp_path: Path) -> None:
    from avatarium.providers.registry import ProviderRegistry

    registry = ProviderRegistry(make_settings(tmp_path))
    index = read("providers.md")
    for kind in ("llm", "tts"):
        for name in registry.names(kind):  # type: ignore[arg-type]
            assert (DOCS / "providers" / f"{name}.md").exists(), f"no page for {name}"
            assert f"`{name}`" in index
