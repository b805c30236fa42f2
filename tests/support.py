"""Helpers shared by the tests (not fixtures): clocks, clients, test-only providers."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette

from avatarium.api.state import AppState
from avatarium.core.events import TextDelta, Usage
from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.llm.base import ChatMessage, ChatRequest
from avatarium.providers.registry import ProviderSpec
from avatarium.providers.tts.base import Speech, Voice


class OffsetClock:
    """Real time plus an offset that tests can push forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class Api:
    """One running app and a client for it, with helpers to make accounts and keys."""

    app: Starlette
    client: httpx.AsyncClient
    clock: OffsetClock
    backend: str
    counter: list[int] = field(default_factory=lambda: [0])

    @property
    def state(self) -> AppState:
        state = self.app.state.avatarium
        assert isinstance(state, AppState)
        return state

    async def key(
        self,
        *,
        account: str | None = None,
        mode: str = "test",
        scope: str = "full",
        expires_in: timedelta | None = None,
        tier: str = "enterprise",
    ) -> str:
        self.counter[0] += 1
        name = account or f"acct-{self.backend}-{id(self)}-{self.counter[0]}"
        # Enterprise by default: tests that are not about limits must not run into them.
        acct = await self.state.accounts.ensure(name, tier if account is None else None)
        issued = await self.state.keys.create(acct, mode=mode, scope=scope, expires_in=expires_in)
        return issued.secret

    def audio_files(self) -> set[str]:
        """The names of every stored MP3 file (the local store)."""
        return {path.name for path in (self.state.settings.data_dir / "audio").iterdir()}

    async def stored_audio(self) -> set[str]:
        """The keys of every stored clip, whichever store the app uses."""
        return {k async for keys in self.state.audio.older_than(float("inf"), 1000) for k in keys}

    @staticmethod
    def auth(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def conversation(self, key: str, **fields: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/conversations", json={"avatar_id": "aria-001", **fields}, headers=self.auth(key)
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def assert_error(
    response: httpx.Response, status: int, code: str, **details: Any
) -> dict[str, Any]:
    """Assert the documented error envelope, and the given ``details`` entries."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    for name, value in details.items():
        assert error["details"][name] == value, error
    result: dict[str, Any] = error
    return result


class ScriptedLLM:
    """A third-party LLM plugin whose behaviour a test scripts: it writes ``text`` and then
    fails with ``fail`` (a ProviderError or any exception), or waits on ``gate`` first."""

    default_model = "scripted-1"
    context_tokens = 4096
    max_reply_tokens = 64

    def __init__(
        self, name: str, text: str = "Hello from the plugin.", fail: BaseException | None = None
    ) -> None:
        self.name = name
        self.text = text
        self.fail = fail
        self.gate: asyncio.Event | None = None
        self.calls = 0
        self.requests: list[ChatRequest] = []

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        return sum(len(m.content) // 4 + 4 for m in messages)

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | Usage]:
        self.calls += 1
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        for word in self.text.split(" "):
            yield TextDelta(word + " ")
        if self.fail is not None:
            raise self.fail
        yield Usage(ai_tokens=len(self.text.split()))


class FailingTTS:
    """A third-party speech plugin that always fails as ``category``."""

    produces_audio = True
    default_voice = "any"

    def __init__(self, name: str, category: FailureCategory) -> None:
        self.name = name
        self.category = category

    async def synthesize(self, text: str, voice_id: str) -> Speech:
        raise ProviderError(self.category, self.name, "vendor said no")

    async def voices(self) -> list[Voice]:
        return [Voice("any", "Any", "en-US", "neutral", self.name)]

    async def has_voice(self, voice_id: str) -> bool:
        return True


class HeldLLM:
    """An LLM plugin that writes ``pieces`` in order and, after ``hold_after`` of them, waits
    for the test to ``resume`` it, so a test can observe what the client saw while the model
    was still writing. It records whether it finished and whether it was stopped early."""

    default_model = "held-1"
    context_tokens = 4096
    max_reply_tokens = 256

    def __init__(self, name: str, pieces: list[str], hold_after: int | None = None) -> None:
        self.name = name
        self.pieces = pieces
        self.hold_after = hold_after
        self.resume = asyncio.Event()
        self.finished = False
        self.stopped_early = False
        self.holding = asyncio.Event()
        self.fail_first: BaseException | None = None  # raised (once) before any text

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        return sum(len(m.content) // 4 + 4 for m in messages)

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | Usage]:
        if self.fail_first is not None:
            failure, self.fail_first = self.fail_first, None
            raise failure
        self.finished = self.stopped_early = False
        try:
            for position, piece in enumerate(self.pieces):
                if position == self.hold_after:
                    self.holding.set()
                    await asyncio.wait_for(self.resume.wait(), 15)
                yield TextDelta(piece)
            self.finished = True
            yield Usage(ai_tokens=len(self.pieces))
        finally:
            if not self.finished:
                self.stopped_early = True


def register_held(api: Api, pieces: list[str], hold_after: int | None = None) -> HeldLLM:
    """A HeldLLM writing ``pieces``, registered under a fresh provider name."""
    llm = HeldLLM(f"held-{secrets.token_hex(3)}", pieces, hold_after)
    api.state.providers.register(ProviderSpec(llm.name, "llm", lambda _s: llm))
    return llm


def personality(api: Api, conversation: dict[str, Any]) -> str:
    """The system prompt a conversation created without one uses: its avatar's personality."""
    avatar = api.state.avatars.get(conversation["avatar_id"])
    assert avatar is not None
    return avatar.personality


async def scripted_live_key(
    api: Api, text: str, kind: type[ScriptedLLM] = ScriptedLLM
) -> tuple[str, ScriptedLLM]:
    """A scripted model that writes ``text``, registered with the app, and a live key of a
    new enterprise account (so limits never get in the way)."""
    llm = kind(f"scripted-{secrets.token_hex(3)}", text=text)
    api.state.providers.register(ProviderSpec(llm.name, "llm", lambda _s: llm))
    account = await api.state.accounts.ensure(f"acct-{secrets.token_hex(6)}", "enterprise")
    return (await api.state.keys.create(account, mode="live")).secret, llm


async def assert_ranges_served(client: httpx.AsyncClient, url: str) -> None:
    """A clip's signed URL answers byte ranges as media players ask for them (206 with the
    part), and the whole clip for a range it cannot serve."""
    whole = await client.get(url)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    data, size = whole.content, len(whole.content)
    assert size > 200
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=100-": (100, size - 1),
        "bytes=-50": (size - 50, size - 1),
        f"bytes=10-{size + 500}": (10, size - 1),
    }
    for header, (first, last) in cases.items():
        part = await client.get(url, headers={"Range": header})
        assert part.status_code == 206, (header, part.status_code)
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}", header
        assert part.headers["content-length"] == str(last - first + 1)
        assert part.content == data[first : last + 1], header
    for header in (f"bytes={size}-", "bytes=0-1,5-9", "bytes=abc", "items=0-9", "bytes=²-"):
        ignored = await client.get(url, headers={"Range": header.encode()})
        assert ignored.status_code == 200 and ignored.content == data, header
