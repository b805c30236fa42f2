"""The ``avatarium`` command: serve, migrate, keys and accounts."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sys
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from avatarium import __version__
from avatarium.accounts.service import TIERS
from avatarium.api.state import AppState
from avatarium.avatars.catalog import AvatarFileError
from avatarium.core.clock import rfc3339
from avatarium.core.settings import Settings

DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
FIRST_ACCOUNT = "default"


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h`` or ``30d``."""
    match = DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"expected a duration like 90s, 15m, 2h or 30d: {text!r}")
    return timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected zero or more: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatarium", description="Avatarium API server.")
    parser.add_argument("--version", action="version", version=f"avatarium {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="migrate the database, then serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)

    commands.add_parser("migrate", help="bring the database schema up to date")

    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser("create", help="create a key (shown once)")
    create.add_argument("--account", required=True)
    create.add_argument("--tier", choices=TIERS)
    create.add_argument("--mode", choices=("live", "test"), default="test")
    create.add_argument("--name")
    create.add_argument("--expires-in", type=parse_duration)
    create.add_argument("--read-only", action="store_true")
    create.add_argument("--json", action="store_true")
    listing = key_commands.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--account")
    listing.add_argument("--json", action="store_true")
    revoke = key_commands.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")

    chat = commands.add_parser("chat", help="talk to an avatar in the terminal (a client)")
    try:
        from avatarium_client.chat import add_arguments
    except ImportError:  # the client library is a separate distribution
        chat.add_argument("rest", nargs=argparse.REMAINDER)
    else:
        add_arguments(chat)

    accounts = commands.add_parser("accounts", help="change an account's tier or limits")
    account_commands = accounts.add_subparsers(
        dest="accounts_command", required=True, metavar="ACTION"
    )
    set_tier = account_commands.add_parser("set-tier", help="move an account to a tier")
    set_tier.add_argument("name")
    set_tier.add_argument("tier", choices=TIERS)
    set_limits = account_commands.add_parser("set-limits", help="override an account's limits")
    set_limits.add_argument("name")
    set_limits.add_argument("--rpm", type=positive_int)
    set_limits.add_argument("--concurrent", type=positive_int)
    set_limits.add_argument("--monthly-messages", type=positive_int)

    commands.add_parser("gc", help="remove expired and orphaned data (also runs periodically)")

    analytics = commands.add_parser("analytics", help="maintain the analytics roll-ups")
    analytics_commands = analytics.add_subparsers(
        dest="analytics_command", required=True, metavar="ACTION"
    )
    analytics_commands.add_parser(
        "rebuild", help="recompute the daily roll-ups from the stored conversations"
    )
    return parser


async def _with_state(settings: Settings, work: Any) -> int:
    from avatarium.app import build_state

    state = build_state(settings)
    try:
        await state.db.migrate()
        result: int = await work(state)
        return result
    finally:
        await state.db.dispose()


def _key_json(issued_key: Any) -> dict[str, Any]:
    record, account = issued_key.record, issued_key.account
    return {
        "id": record.id,
        "key": issued_key.secret,
        "account": account.name,
        "tier": account.tier,
        "mode": record.mode,
        "scope": record.scope,
        "expires_at": rfc3339(record.expires_at),
    }


async def _keys_create(state: AppState, args: argparse.Namespace) -> int:
    account = await state.accounts.ensure(args.account, args.tier)
    issued = await state.keys.create(
        account,
        mode=args.mode,
        scope="read" if args.read_only else "full",
        name=args.name,
        expires_in=args.expires_in,
    )
    if args.json:
        print(json.dumps(_key_json(issued)))
    else:
        print(
            f"Created {issued.record.mode} key {issued.record.id} for account "
            f"{account.name} ({account.tier}, {issued.record.scope})."
        )
        print("Copy it now; it will not be shown again:")
        print(f"  {issued.secret}")
    return 0


async def _keys_list(state: AppState, args: argparse.Namespace) -> int:
    rows = await state.keys.list(args.account)
    items = [
        {
            "id": key.id,
            "prefix": key.prefix,
            "account": account.name,
            "tier": account.tier,
            "mode": key.mode,
            "scope": key.scope,
            "name": key.name,
            "created_at": rfc3339(key.created_at),
            "expires_at": rfc3339(key.expires_at),
            "revoked": key.revoked_at is not None,
        }
        for key, account in rows
    ]
    if args.json:
        print(json.dumps(items))
        return 0
    if not items:
        print("No keys.")
        return 0
    print(f"{'ID':<28} {'PREFIX':<14} {'ACCOUNT':<16} {'MODE':<5} {'SCOPE':<5} STATE")
    for item in items:
        state_text = (
            "revoked"
            if item["revoked"]
            else (f"expires {item['expires_at']}" if item["expires_at"] else "active")
        )
        print(
            f"{item['id']:<28} {item['prefix']:<14} {item['account']:<16} "
            f"{item['mode']:<5} {item['scope']:<5} {state_text}"
        )
    return 0


async def _keys_revoke(state: AppState, args: argparse.Namespace) -> int:
    if await state.keys.revoke(args.key_id):
        print(f"Revoked {args.key_id}.")
        return 0
    print(f"error: no key {args.key_id}", file=sys.stderr)
    return 1


async def _set_tier(state: AppState, args: argparse.Namespace) -> int:
    account = await state.accounts.set_tier(args.name, args.tier)
    if account is None:
        print(f"error: no account {args.name}", file=sys.stderr)
        return 1
    print(f"Account {account.name} is now on the {account.tier} tier.")
    return 0


async def _set_limits(state: AppState, args: argparse.Namespace) -> int:
    if args.rpm is None and args.concurrent is None and args.monthly_messages is None:
        print(
            "error: give at least one of --rpm, --concurrent, --monthly-messages", file=sys.stderr
        )
        return 2
    account = await state.accounts.set_limits(
        args.name,
        rpm=args.rpm,
        concurrent=args.concurrent,
        monthly_messages=args.monthly_messages,
    )
    if account is None:
        print(f"error: no account {args.name}", file=sys.stderr)
        return 1
    print(
        f"Limits of {account.name}: rpm={account.rpm_limit} concurrent="
        f"{account.concurrent_limit} monthly_messages={account.monthly_messages_limit} "
        f"(unset values follow the {account.tier} tier)."
    )
    return 0


async def _gc(state: AppState) -> int:
    print("Removing expired and orphaned data...", flush=True)
    report = await state.gc.run()
    for name, count in report.as_dict().items():
        print(f"  {name.replace('_', ' ')}: {count}")
    return 0


async def _rebuild_analytics(state: AppState, _args: argparse.Namespace) -> int:
    from avatarium.analytics.rollup import rebuild

    print("Recomputing the analytics roll-ups from the stored conversations...", flush=True)
    rows = await state.db.write_core(rebuild)
    print(f"Done: {rows} roll-up rows written.")
    return 0


async def _first_key(state: AppState, host: str, port: int) -> int:
    """On an empty database, create a test key and show how to use it."""
    if await state.keys.count() > 0:
        return 0
    account = await state.accounts.ensure(FIRST_ACCOUNT)
    issued = await state.keys.create(account, mode="test", name="first key")
    base = state.settings.public_base_url or f"http://{host}:{port}"
    base = base.rstrip("/")
    key = issued.secret
    print(
        f"""
No API keys existed, so a test key was created for account '{FIRST_ACCOUNT}'.
It is shown only this once:

    {key}

Try it (in another terminal, once the server says it is running):

    CONV=$(curl -s {base}/v1/conversations \\
      -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
      -d '{{"avatar_id": "aria-001"}}' \\
      | python3 -c 'import sys,json; print(json.load(sys.stdin)["id"])')
    curl -s {base}/v1/conversations/$CONV/messages \\
      -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
      -d '{{"content": "Hello! Who are you?"}}'

Or open {base}/ in a browser, paste the key, and talk to Aria,
or chat in the terminal: .venv/bin/avatarium chat --key {key}
""",
        flush=True,
    )
    return 0


def serve(settings: Settings, host: str, port: int, workers: int) -> int:
    import uvicorn

    if workers > 1 and not settings.redis_url:
        # In-process limits would be counted per worker: N workers, N times the limit.
        print(
            f"error: --workers {workers} needs AVATARIUM_REDIS_URL, so that rate limits and "
            "concurrency are shared by all workers. Set it, or run one worker.",
            file=sys.stderr,
        )
        return 2

    asyncio.run(_with_state(settings, lambda state: _first_key(state, host, port)))
    if workers > 1:
        os.environ["AVATARIUM_WORKERS"] = str(workers)  # inherited by the worker processes
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Each worker writes its metrics to files here; any worker's /metrics sums them.
            metrics_dir = settings.data_dir / "metrics"
            shutil.rmtree(metrics_dir, ignore_errors=True)  # counts start again with the server
            metrics_dir.mkdir(parents=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        uvicorn.run(
            "avatarium.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **_server_options(settings),
        )
        return 0
    from avatarium.app import create_app

    uvicorn.run(
        create_app(settings, migrate=False), host=host, port=port, **_server_options(settings)
    )
    return 0


def _server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options: the guarded HTTP protocol (slow or huge request heads are cut off)
    and no ``Server`` banner naming the software to attackers."""
    from avatarium.core.logs import log_config
    from avatarium.server_protocol import graceful_websockets, guarded_protocol

    return {
        "log_level": settings.log_level,
        "log_config": log_config(settings.log_level, settings.log_format),
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
        "ws": graceful_websockets(settings.shutdown_grace_s),
        "http": guarded_protocol(settings.header_timeout_s, settings.max_header_bytes),
        "server_header": False,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValidationError, AvatarFileError) as error:
        # Configuration mistakes get one readable line, not a traceback.
        print(f"error: invalid configuration: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "chat":
        try:
            from avatarium_client.chat import run as run_chat
        except ImportError:
            print("error: the chat needs the client: pip install ./clients/python", file=sys.stderr)
            return 2
        return run_chat(args)
    settings = Settings()
    from avatarium.core.logs import configure

    configure(settings.log_level, settings.log_format)
    if args.command == "serve":
        return serve(settings, args.host, args.port, args.workers)
    if args.command == "migrate":

        async def done(_state: AppState) -> int:
            print("Database is up to date.")
            return 0

        return asyncio.run(_with_state(settings, done))
    if args.command == "gc":
        return asyncio.run(_with_state(settings, _gc))
    handlers = {
        ("keys", "create"): _keys_create,
        ("keys", "list"): _keys_list,
        ("keys", "revoke"): _keys_revoke,
        ("accounts", "set-tier"): _set_tier,
        ("accounts", "set-limits"): _set_limits,
        ("analytics", "rebuild"): _rebuild_analytics,
    }
    action = getattr(args, f"{args.command}_command")
    handler = handlers[(args.command, action)]
    return asyncio.run(_with_state(settings, lambda state: handler(state, args)))


if __name__ == "__main__":
    sys.exit(main())
