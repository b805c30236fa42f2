"""Cloud providers end to end: the real adapters against loopback fakes of each vendor's
documented wire protocol, including every scripted fault."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from avatarium.app import create_app
from avatarium.providers.registry import ProviderRegistry
from avatarium.speech.mp3 import mp3_duration_ms
from tests.conftest import make_settings
from tests.fakes import anthropic, gemini, openai, speech
from tests.fakes.server import FakeServer
from tests.support import Api, OffsetClock, assert_error, personality

TIMEOUT_S = 1.0
RETRIES = 2


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeServer]]:
    servers = {
        "openai": FakeServer(openai.build).start(),
        "groq": FakeServer(
            lambda s: openai.build(s, prefix="/openai/v1", api_key="gsk-test", groq_usage=True)
        ).start(),
        "anthropic": FakeServer(anthropic.build).start(),
        "gemini": FakeServer(gemini.build).start(),
        "elevenlabs": FakeServer(speech.build_elevenlabs).start(),
        "google": FakeServer(speech.build_google).start(),
    }
    yield servers
    for server in servers.values():
        server.stop()


def cloud_settings(fakes: dict[str, FakeServer], data_dir: Path, **extra: Any) -> Any:
    return make_settings(
        data_dir,
        openai_api_key=openai.API_KEY,
        openai_base_url=f"{fakes['openai'].url}/v1",
        groq_api_key="gsk-test",
        groq_base_url=f"{fakes['groq'].url}/openai/v1",
        anthropic_api_key=anthropic.API_KEY,
        anthropic_base_url=fakes["anthropic"].url,
        gemini_api_key=gemini.API_KEY,
        gemini_base_url=fakes["gemini"].url,
        elevenlabs_api_key=speech.ELEVENLABS_KEY,
        elevenlabs_base_url=fakes["elevenlabs"].url,
        google_tts_api_key=speech.GOOGLE_KEY,
        google_tts_base_url=fakes["google"].url,
        provider_timeout_s=TIMEOUT_S,
        provider_max_retries=RETRIES,
        provider_retry_after_cap_s=5.0,
        **extra,
    )


async def running(settings: Any) -> AsyncIterator[Api]:
    app = create_app(settings, clock=OffsetClock(), providers=ProviderRegistry(settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=60
        ) as client:
            yield Api(app=app, client=client, clock=OffsetClock(), backend="sqlite")


@pytest.fixture(scope="module")
async def cloud(
    fakes: dict[str, FakeServer], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    async for api in running(cloud_settings(fakes, tmp_path_factory.mktemp("cloud"))):
        yield api


@pytest.fixture(autouse=True)
def clean_fakes(fakes: dict[str, FakeServer]) -> None:
    for server in fakes.values():
        server.state.reset()


async def send(
    api: Api, key: str, conversation_id: str, content: str = "Hello there", **extra: Any
) -> httpx.Response:
    return await api.client.post(
        f"/v1/conversations/{conversation_id}/messages",
        json={"content": content, **extra},
        headers=api.auth(key),
    )


async def snapshot(api: Api, key: str, conversation_id: str) -> Any:
    body = (
        await api.client.get(f"/v1/conversations/{conversation_id}", headers=api.auth(key))
    ).json()
    body.pop("status")
    return body


LLM_EXPECTED = {
    "openai": "You said: Hello there. That is a fine thing to say!",
    "groq": "You said: Hello there. That is a fine thing to say!",
    "anthropic": "Claude heard: Hello there. Lovely to meet you!",
    "gemini": "Gemini replies to: Hello there. Have a bright day!",
}


@pytest.mark.parametrize("provider", sorted(LLM_EXPECTED))
async def test_each_ai_provider_end_to_end(
    cloud: Api, fakes: dict[str, FakeServer], provider: str
) -> None:
    key = await cloud.key(mode="live")
    conversation = await cloud.conversation(key, ai_provider=provider, system_prompt="Be kind.")
    response = await send(cloud, key, conversation["id"])
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["content"] == LLM_EXPECTED[provider]
    assert reply["ai_provider"] == provider and reply["tts_provider"] == "espeak"
    assert reply["usage"]["ai_tokens"] > 10
    assert reply["audio"]["duration_ms"] > 500
    requests = fakes[provider].state.requests
    assert len(requests) == 1
    sent = requests[0]
    if provider in ("openai", "groq"):
        assert sent.headers["authorization"].startswith("Bearer ")
        assert sent.body["messages"][0] == {"role": "system", "content": "Be kind."}
        assert sent.body["messages"][-1] == {"role": "user", "content": "Hello there"}
        assert sent.body["stream"] is True
    elif provider == "anthropic":
        assert sent.headers["anthropic-version"] == "2023-06-01"
        assert sent.body["system"] == "Be kind."
        assert sent.body["messages"] == [{"role": "user", "content": "Hello there"}]
    else:
        assert sent.body["systemInstruction"] == {"parts": [{"text": "Be kind."}]}
        assert sent.body["contents"][-1] == {"role": "user", "parts": [{"text": "Hello there"}]}
    assert (
        sent.body.get("model", conversation["config"]["model"]) == conversation["config"]["model"]
    )
    stored = (
        await cloud.client.get(f"/v1/conversations/{conversation['id']}", headers=cloud.auth(key))
    ).json()
    assert stored["messages"][1]["content"] == LLM_EXPECTED[provider]
    assert stored["usage"]["ai_tokens"] == reply["usage"]["ai_tokens"]


@pytest.mark.parametrize("provider", ["elevenlabs", "google"])
async def test_each_speech_provider_end_to_end(
    cloud: Api, fakes: dict[str, FakeServer], provider: str
) -> None:
    key = await cloud.key(mode="live")
    conversation = await cloud.conversation(key, ai_provider="openai", tts_provider=provider)
    assert (
        conversation["config"]["voice_id"]
        == {"elevenlabs": "21m00Tcm4TlvDq8ikWAM", "google": "en-US-Neural2-F"}[provider]
    )
    reply = (await send(cloud, key, conversation["id"])).json()
    assert reply["tts_provider"] == provider
    audio = await cloud.client.get(reply["audio_url"].removeprefix("http://testserver"))
    assert audio.status_code == 200
    measured = mp3_duration_ms(audio.content)
    assert abs(measured - reply["audio"]["duration_ms"]) <= 0.1 * measured
    assert reply["usage"]["tts_characters"] == len(reply["content"])
    if provider == "elevenlabs":
        words = [w["text"] for w in reply["audio"]["words"]]
        assert words[:3] == ["You", "said", "Hello"]
        assert reply["audio"]["visemes"]
    else:
        assert reply["audio"]["words"] is None and reply["audio"]["visemes"] is None
    voices = (await cloud.client.get(f"/v1/tts/voices?provider={provider}")).json()["data"]
    assert {v["provider"] for v in voices} == {provider} and len(voices) == 2
    before = len(fakes[provider].state.requests)
    await cloud.client.get(f"/v1/tts/voices?provider={provider}")
    assert len(fakes[provider].state.requests) == before  # cached


FAULTS = [
    # fault script, reason, retryable, attempts
    (["500", "500", "500"], "unavailable", True, 3),
    (["503", "503", "503"], "unavailable", True, 3),
    (["429", "429", "429"], "rate_limited", True, 3),
    (["401"], "auth_failed", False, 1),
    (["slow", "slow", "slow"], "timeout", True, 3),
    (["cut"], "unavailable", True, 1),
    (["malformed"], "bad_response", False, 1),
]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "groq"])
@pytest.mark.parametrize(
    ("script", "reason", "retryable", "attempts"), FAULTS, ids=[f[0][0] for f in FAULTS]
)
async def test_ai_faults(
    cloud: Api,
    fakes: dict[str, FakeServer],
    provider: str,
    script: list[str],
    reason: str,
    retryable: bool,
    attempts: int,
) -> None:
    key = await cloud.key(mode="live")
    conversation = await cloud.conversation(key, ai_provider=provider, tts_provider="browser")
    before = await snapshot(cloud, key, conversation["id"])
    state = fakes[provider].state
    state.faults.extend(script)
    started = time.monotonic()
    response = await send(cloud, key, conversation["id"])
    elapsed = time.monotonic() - started
    assert_error(
        response, 503, "ai_provider_error", provider=provider, reason=reason, retryable=retryable
    )
    assert len(state.requests) == attempts
    if script[0] == "429":
        gaps = [b.at - a.at for a, b in zip(state.requests, state.requests[1:], strict=False)]
        assert all(gap >= 0.95 for gap in gaps), gaps  # Retry-After: 1 was honoured
    # Never past the timeout per attempt plus the backoff between them (0.5 s, 1 s).
    assert elapsed < attempts * (TIMEOUT_S + 0.5) + 1.5 + 1.0
    assert await snapshot(cloud, key, conversation["id"]) == before


async def test_a_provider_failure_is_logged_once_with_its_reason_and_attempts(
    cloud: Api, fakes: dict[str, FakeServer], caplog: pytest.LogCaptureFixture
) -> None:
    key = await cloud.key(mode="live")
    conversation = await cloud.conversation(key, ai_provider="openai", tts_provider="browser")
    fakes["openai"].state.faults.extend(["503", "503", "503"])
    with caplog.at_level("WARNING"):
        response = await send(cloud, key, conversation["id"])
    assert response.status_code == 503
    lines = [r for r in caplog.records if r.getMessage().startswith("provider failed")]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    message = lines[0].getMessage()
    assert "kind=llm provider=openai reason=unavailable attempts=3" in message, message


async def test_transient_failures_are_retried_to_success(
    cloud: Api, fakes: dict[str, FakeServer]
) -> None:
    key = await cloud.key(mode="live")
    conversation = await cloud.conversation(key, ai_provider="anthropic")
    fakes["anthropic"].state.faults.extend(["529", "429"])
    response = await send(cloud, key, conversation["id"])
    assert response.status_code == 200, response.text
    requests = fakes["anthropic"].state.requests
    assert len(requests) == 3
    assert requests[2].at - requests[1].at >= 0.95  # waited for Retry-After
    assert (await snapshot(cloud, key, conversation["id"]))["message_count"] == 2


async def test_an_error_event_mid_stream_is_not_retried(
    cloud: Api, fakes: dict[str, FakeServer]
) -> None:
    key = await cloud.key(mode="live")
    conversation = await cloud.conversation(key, ai_provider="anthropic", tts_provider="browser")
    fakes["anthropic"].state.faults.append("overloaded-midstream")
    response = await send(cloud, key, conversation["id"])
    assert_error(response, 503, "ai_provider_error", reason="unavailable", retryable=True)
    assert len(fakes["anthropic"].state.requests) == 1


@pytest.mark.parametrize("provider", ["elevenlabs", "google"])
@pytest.mark.parametrize(
    ("script", "reason", "retryable", "attempts"),
    [
        (["503", "503", "503"], "unavailable", True, 3),
        (["401"], "auth_failed", False, 1),
        (["malformed"], "bad_response", False, 1),
    ],
    ids=["503", "401", "malformed"],
)
async def test_speech_faults(
    cloud: Api,
    fakes: dict[str, FakeServer],
    provider: str,
    script: list[str],
    reason: str,
    retryable: bool,
    attempts: int,
) -> None:
    key = await cloud.key(mode="live")
    conversation = await cloud.conversation(key, ai_provider="openai", tts_provider=provider)
    before = await snapshot(cloud, key, conversation["id"])
    files = cloud.audio_files()
    fakes[provider].state.faults.extend(script)
    response = await send(cloud, key, conversation["id"])
    assert_error(
        response, 503, "tts_provider_error", provider=provider, reason=reason, retryable=retryable
    )
    synth = [r for r in fakes[provider].state.requests if r.method == "POST"]
    assert len(synth) == attempts
    assert await snapshot(cloud, key, conversation["id"]) == before
    assert cloud.audio_files() == files


async def test_test_mode_never_calls_a_cloud_provider(
    cloud: Api, fakes: dict[str, FakeServer]
) -> None:
    key = await cloud.key(mode="test")
    conversation = await cloud.conversation(key, ai_provider="openai", tts_provider="elevenlabs")
    assert conversation["config"]["sandbox"] is True
    reply = (await send(cloud, key, conversation["id"])).json()
    assert reply["ai_provider"] == "local" and reply["tts_provider"] == "espeak"
    assert all(not server.state.requests for server in fakes.values())


@pytest.fixture(scope="module")
async def with_fallback(
    fakes: dict[str, FakeServer], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    settings = cloud_settings(
        fakes,
        tmp_path_factory.mktemp("fallback"),
        ai_fallback="openai,anthropic,local",
        tts_fallback="elevenlabs,espeak",
        fallback_cooldown_s=60,
    )
    async for api in running(settings):
        yield api


async def test_fallback_answers_and_the_cooldown_skips_the_failing_provider(
    with_fallback: Api, fakes: dict[str, FakeServer]
) -> None:
    api = with_fallback
    key = await api.key(mode="live")
    conversation = await api.conversation(key, ai_provider="openai", tts_provider="elevenlabs")
    fakes["openai"].state.faults.extend(["503", "503", "503"])
    fakes["elevenlabs"].state.faults.extend(["401"])
    reply = (await send(api, key, conversation["id"])).json()
    assert reply["content"] == LLM_EXPECTED["anthropic"]
    assert reply["ai_provider"] == "anthropic" and reply["tts_provider"] == "espeak"
    assert len(fakes["openai"].state.requests) == 3  # its own retries came first
    # The conversation's model name is openai's; anthropic gets its own default.
    assert fakes["anthropic"].state.requests[0].body["model"] == "claude-3-5-haiku-latest"
    # While openai cools down, the next request goes to anthropic first.
    second = (await send(api, key, conversation["id"], content="Again")).json()
    assert second["ai_provider"] == "anthropic"
    assert len(fakes["openai"].state.requests) == 3
    stored = (
        await api.client.get(f"/v1/conversations/{conversation['id']}", headers=api.auth(key))
    ).json()
    assert [m.get("ai_provider") for m in stored["messages"]] == [
        None,
        "anthropic",
        None,
        "anthropic",
    ]


async def test_when_cloud_providers_fail_the_embedded_model_answers_last(
    with_fallback: Api, fakes: dict[str, FakeServer]
) -> None:
    api = with_fallback
    key = await api.key(mode="live")
    conversation = await api.conversation(key, ai_provider="anthropic", tts_provider="browser")
    api.state.conversations.health.succeeded("llm", "openai")
    fakes["anthropic"].state.faults.extend(["401"])
    fakes["openai"].state.faults.extend(["401"])
    reply = (await send(api, key, conversation["id"])).json()
    # local, the last of the chain, still answers.
    assert reply["ai_provider"] == "local"


async def test_a_cancelled_cloud_reply_charges_an_estimate_marked_as_such(
    cloud: Api, fakes: dict[str, FakeServer]
) -> None:
    """OpenAI reports usage only at the end of a stream: a reply cancelled before that is
    charged an estimate from its prompt and the text it wrote, and counted as estimated."""
    from avatarium.conversations.prompt import build_prompt
    from avatarium.providers.llm.base import ChatMessage
    from tests.asgi_live import open_socket

    key = await cloud.key(mode="live")
    conversation = await cloud.conversation(key, ai_provider="openai", tts_provider="browser")
    before = (await cloud.client.get("/v1/usage", headers=cloud.auth(key))).json()
    fakes["openai"].state.faults.append("stall")  # two words, then silence
    socket = open_socket(cloud.app, f"/v1/conversations/{conversation['id']}/ws", cloud.auth(key))
    assert (await socket.receive() or {})["type"] == "ready"
    content = "Hello there"
    await socket.send({"type": "message", "content": content})
    written = ""
    while written.count(" ") < 1 or not written.split(" ")[1]:
        frame = await socket.receive()
        assert frame is not None and frame["type"] == "message.delta", frame
        written += frame["delta"]
    await socket.send({"type": "cancel"})
    assert (await socket.until("cancelled", "done", "error"))[-1]["type"] == "cancelled"
    await socket.close()
    after = (await cloud.client.get("/v1/usage", headers=cloud.auth(key))).json()
    provider = cloud.state.providers.llm("openai")
    assert provider is not None
    prompt = build_prompt(provider, personality(cloud, conversation), [], content)
    base = provider.count_tokens(prompt)
    expected = base + max(
        1, provider.count_tokens([*prompt, ChatMessage("assistant", written)]) - base
    )
    charged = after["ai_tokens"] - before["ai_tokens"]
    assert charged == expected > 0
    assert after["ai_tokens_estimated"] - before["ai_tokens_estimated"] == charged


@pytest.fixture(scope="module")
async def cloud_only_fallback(
    fakes: dict[str, FakeServer], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    settings = cloud_settings(
        fakes,
        tmp_path_factory.mktemp("cloud-only"),
        ai_fallback="openai,anthropic",
        fallback_cooldown_s=0,
    )
    async for api in running(settings):
        yield api


async def test_when_every_provider_fails_the_error_names_the_last(
    cloud_only_fallback: Api, fakes: dict[str, FakeServer]
) -> None:
    api = cloud_only_fallback
    key = await api.key(mode="live")
    conversation = await api.conversation(key, ai_provider="openai", tts_provider="browser")
    before = await snapshot(api, key, conversation["id"])
    openai_calls = len(fakes["openai"].state.requests)
    anthropic_calls = len(fakes["anthropic"].state.requests)
    fakes["openai"].state.faults.extend(["401"])
    fakes["anthropic"].state.faults.extend(["500"] * (RETRIES + 1))
    response = await send(api, key, conversation["id"])
    error = assert_error(response, 503, "ai_provider_error")
    # The chain ran openai, then anthropic: the error is anthropic's, with its own reason.
    assert error["details"] == {"provider": "anthropic", "reason": "unavailable", "retryable": True}
    assert len(fakes["openai"].state.requests) == openai_calls + 1  # 401 is not retried
    assert len(fakes["anthropic"].state.requests) == anthropic_calls + RETRIES + 1
    assert await snapshot(api, key, conversation["id"]) == before


@pytest.fixture(scope="module")
async def bare(
    fakes: dict[str, FakeServer], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    """A server with no cloud provider configured at all."""
    async for api in running(
        make_settings(tmp_path_factory.mktemp("bare"), provider_timeout_s=TIMEOUT_S)
    ):
        yield api


async def test_bring_your_own_key(
    bare: Api,
    fakes: dict[str, FakeServer],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    key = await bare.key(mode="live")
    refused = await bare.client.post(
        "/v1/conversations",
        json={"avatar_id": "aria-001", "ai_provider": "openai"},
        headers=bare.auth(key),
    )
    assert_error(refused, 400, "invalid_parameter", field="ai_provider", reason="not_configured")
    byok = {
        "provider": "openai",
        "api_key": openai.API_KEY,
        "base_url": f"{fakes['openai'].url}/v1",
        "model": "gpt-own",
    }
    created = await bare.client.post(
        "/v1/conversations",
        json={"avatar_id": "aria-001", "byok": byok, "tts_provider": "browser"},
        headers=bare.auth(key),
    )
    assert created.status_code == 200, created.text
    conversation = created.json()
    assert conversation["byok_enabled"] is True
    assert conversation["config"]["ai_provider"] == "openai"
    assert conversation["config"]["model"] == "gpt-own"
    assert openai.API_KEY not in created.text
    reply = (await send(bare, key, conversation["id"])).json()
    assert reply["content"] == LLM_EXPECTED["openai"]
    assert fakes["openai"].state.requests[0].body["model"] == "gpt-own"
    fetched = await bare.client.get(
        f"/v1/conversations/{conversation['id']}", headers=bare.auth(key)
    )
    assert openai.API_KEY not in fetched.text

    # A key the vendor rejects is auth_failed, not retryable, and not retried.
    wrong = {**byok, "api_key": "sk-wrong-key-123"}
    rejected = (
        await bare.client.post(
            "/v1/conversations",
            json={"avatar_id": "aria-001", "byok": wrong},
            headers=bare.auth(key),
        )
    ).json()
    before = len(fakes["openai"].state.requests)
    failed = await send(bare, key, rejected["id"])
    assert_error(
        failed, 503, "ai_provider_error", provider="openai", reason="auth_failed", retryable=False
    )
    assert len(fakes["openai"].state.requests) == before + 1

    # Neither key is readable in the database or in any log line.
    database = (bare.state.settings.data_dir / "avatarium.db").read_bytes()
    wal = bare.state.settings.data_dir / "avatarium.db-wal"
    database += wal.read_bytes() if wal.exists() else b""
    logs = caplog.text + "".join(capfd.readouterr())
    for secret in (openai.API_KEY, "sk-wrong-key-123"):
        assert secret.encode() not in database
        assert secret not in logs


async def test_byok_field_errors(bare: Api) -> None:
    key = await bare.key(mode="live")
    for byok, field, reason in [
        ({"api_key": "x"}, "byok.provider", "missing"),
        ({"provider": "openai"}, "byok.api_key", "missing"),
        ({"provider": "local", "api_key": "x"}, "byok.provider", "not_allowed"),
        ({"provider": "openai", "api_key": "x", "colour": 1}, "byok.colour", "unknown_field"),
        (
            {"provider": "openai", "api_key": "x", "base_url": "ftp://x"},
            "byok.base_url",
            "not_allowed",
        ),
    ]:
        response = await bare.client.post(
            "/v1/conversations",
            json={"avatar_id": "aria-001", "byok": byok},
            headers=bare.auth(key),
        )
        code = "missing_parameter" if reason == "missing" else "invalid_parameter"
        assert_error(response, 400, code, field=field, reason=reason)


async def test_a_vendor_down_while_checking_voices_is_a_provider_error(
    with_fallback: Api, fakes: dict[str, FakeServer]
) -> None:
    api = with_fallback
    provider = api.state.providers.tts("elevenlabs")
    provider._voices._fetched_at = float("-inf")  # type: ignore[union-attr]
    fakes["elevenlabs"].state.faults.extend(["503"] * 6)
    response = await api.client.get("/v1/tts/voices?provider=elevenlabs")
    assert_error(
        response,
        503,
        "tts_provider_error",
        provider="elevenlabs",
        reason="unavailable",
        retryable=True,
    )
    key = await api.key(mode="live")
    response = await api.client.post(
        "/v1/conversations",
        json={
            "avatar_id": "aria-001",
            "tts_provider": "elevenlabs",
            "voice_id": "21m00Tcm4TlvDq8ikWAM",
        },
        headers=api.auth(key),
    )
    assert_error(response, 503, "tts_provider_error", provider="elevenlabs")
