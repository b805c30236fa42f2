"""The command line: keys, accounts and migrate, against both databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avatarium.cli import main


@pytest.fixture
def cli_env(
    backend: tuple[str, str | None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("AVATARIUM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AVATARIUM_SECRET_KEY", "cli-test-secret")
    if backend[1] is not None:
        monkeypatch.setenv("AVATARIUM_DATABASE_URL", backend[1])
    else:
        monkeypatch.delenv("AVATARIUM_DATABASE_URL", raising=False)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_create_list_revoke(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "migrate")[0] == 0
    code, out, _ = run(
        capsys,
        "keys",
        "create",
        "--account",
        "cli-acme",
        "--tier",
        "pro",
        "--mode",
        "live",
        "--name",
        "ci",
        "--expires-in",
        "2h",
        "--read-only",
        "--json",
    )
    assert code == 0
    created = json.loads(out)
    assert set(created) == {"id", "key", "account", "tier", "mode", "scope", "expires_at"}
    assert created["key"].startswith("av_live_") and len(created["key"]) == 8 + 32
    assert (created["account"], created["tier"], created["mode"], created["scope"]) == (
        "cli-acme",
        "pro",
        "live",
        "read",
    )
    assert created["expires_at"].endswith("Z")
    code, out, _ = run(capsys, "keys", "list", "--account", "cli-acme", "--json")
    listed = json.loads(out)
    assert [k["id"] for k in listed] == [created["id"]]
    assert created["key"] not in out  # the secret is never shown again
    assert listed[0]["prefix"] == created["key"][:12]
    code, out, _ = run(capsys, "keys", "revoke", created["id"])
    assert code == 0 and created["id"] in out
    _, out, _ = run(capsys, "keys", "list", "--account", "cli-acme")
    assert "revoked" in out
    code, _, err = run(capsys, "keys", "revoke", "key_doesnotexist")
    assert code == 1 and "no key" in err


def test_plain_key_output_shows_the_key_once(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "keys", "create", "--account", "cli-plain")
    assert code == 0 and "av_test_" in out and "not be shown again" in out


def test_accounts_set_tier_and_limits(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "keys", "create", "--account", "cli-tiers")
    code, out, _ = run(capsys, "accounts", "set-tier", "cli-tiers", "creator")
    assert code == 0 and "creator" in out
    code, out, _ = run(
        capsys,
        "accounts",
        "set-limits",
        "cli-tiers",
        "--rpm",
        "5",
        "--concurrent",
        "1",
        "--monthly-messages",
        "50",
    )
    assert code == 0 and "rpm=5" in out and "concurrent=1" in out and "monthly_messages=50" in out
    code, _, err = run(capsys, "accounts", "set-tier", "cli-nobody", "pro")
    assert code == 1 and "no account" in err
    code, _, err = run(capsys, "accounts", "set-limits", "cli-tiers")
    assert code == 2 and "at least one" in err


def test_bad_arguments_are_refused(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (
        ["keys", "create", "--account", "x", "--expires-in", "soon"],
        ["keys", "create", "--account", "x", "--tier", "platinum"],
        ["accounts", "set-limits", "x", "--rpm", "-3"],
    ):
        with pytest.raises(SystemExit) as caught:
            main(args)
        assert caught.value.code == 2
    capsys.readouterr()


def test_configuration_mistakes_are_one_line(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVATARIUM_AVATARS_FILE", str(cli_env / "missing.json"))
    code, _, err = run(capsys, "migrate")
    assert code == 2 and "invalid configuration" in err and "missing.json" in err
    assert "Traceback" not in err
    monkeypatch.delenv("AVATARIUM_AVATARS_FILE")
    monkeypatch.setenv("AVATARIUM_LOCAL_THREADS", "0")
    code, _, err = run(capsys, "migrate")
    assert code == 2 and "local_threads" in err
