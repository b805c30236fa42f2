"""Embedding providers: ``openai`` (``/embeddings``) against a loopback fake of its
documented protocol, end to end through knowledge and retrieval; ``e5`` in-process; and
the sandbox, which never sends a test key's knowledge to a cloud vendor."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from avatarium.app import create_app
from avatarium.providers.embeddings.e5 import E5Embeddings
from avatarium.providers.embeddings.openai import OpenAIEmbeddings
from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.http import RetryPolicy
from avatarium.providers.registry import ProviderRegistry
from tests.conftest import make_settings
from tests.fakes import openai
from tests.fakes.server import FakeServer
from tests.support import Api, OffsetClock
from tests.waiting import wait_for

POLICY = RetryPolicy(max_retries=1, timeout_s=5, retry_after_cap_s=1)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    server = FakeServer(openai.build).start()
    yield server
    server.stop()


def embeddings_of(fake: FakeServer, key: str = openai.API_KEY) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(key, f"{fake.url}/v1", "text-embedding-3-small", POLICY)


async def test_openai_embeddings_follow_the_documented_protocol(fake: FakeServer) -> None:
    fake.state.reset()
    provider = embeddings_of(fake)
    texts = [f"passage number {n} about lanterns" for n in range(300)]
    vectors = await provider.embed(texts, query=False)
    assert vectors.shape == (300, 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Rows are matched by their index, whatever order they came in.
    assert np.allclose(vectors[7], np.asarray(openai.embeddings.vector(texts[7])), atol=1e-6)
    bodies = [r.body for r in fake.state.requests]
    assert [len(b["input"]) for b in bodies] == [256, 44]  # batched within the limits
    assert all(b["model"] == "text-embedding-3-small" for b in bodies)
    assert all(b["encoding_format"] == "float" for b in bodies)
    assert provider.space == "openai:text-embedding-3-small"
    await provider.aclose()


async def test_openai_embedding_failures_are_provider_errors(fake: FakeServer) -> None:
    fake.state.reset()
    wrong = embeddings_of(fake, key="sk-wrong")
    with pytest.raises(ProviderError) as failure:
        await wrong.embed(["hello"], query=True)
    assert failure.value.category is FailureCategory.AUTH_FAILED
    provider = embeddings_of(fake)
    fake.state.faults.extend(["500"])  # retried once, then answered
    assert (await provider.embed(["hello"], query=True)).shape == (1, 256)
    fake.state.faults.extend(["malformed", "malformed"])
    with pytest.raises(ProviderError) as failure:
        await provider.embed(["hello"], query=True)
    assert failure.value.category is FailureCategory.BAD_RESPONSE
    await wrong.aclose()
    await provider.aclose()


async def test_e5_embeds_queries_and_passages_as_unit_vectors() -> None:
    e5 = E5Embeddings()
    passages = await e5.embed(
        ["The ferry leaves at dawn.", "Our cat is called Biscuit."], query=False
    )
    question = await e5.embed(["When does the boat depart?"], query=True)
    assert passages.shape == (2, 384)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-4)
    scores = passages @ question[0]
    assert scores[0] > scores[1] + 0.03  # the ferry, not the cat


@pytest.fixture
async def cloud_api(tmp_path: Path, fake: FakeServer) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path, None, embedding_provider="openai", openai_api_key=openai.API_KEY,
        openai_base_url=f"{fake.url}/v1", provider_max_retries=0,
    )  # fmt: skip
    clock = OffsetClock()
    app = create_app(settings, clock=clock, providers=ProviderRegistry(settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(app=app, client=client, clock=clock, backend="sqlite")


async def avatar_for(api: Api, mode: str) -> tuple[str, str]:
    account = await api.state.accounts.ensure(f"acct-emb-{secrets.token_hex(4)}", "enterprise")
    key = (await api.state.keys.create(account, mode=mode)).secret
    response = await api.client.post(
        "/v1/avatars", json={"name": "Ledger", "tts_provider": "browser"}, headers=api.auth(key)
    )
    return key, response.json()["id"]


async def spaces(api: Api, knowledge_id: str) -> set[Any]:
    rows = await api.state.db.read_core(
        lambda c: c.execute(
            text("SELECT embedding_space FROM knowledge_chunks WHERE knowledge_id = :k"),
            {"k": knowledge_id},
        ).all()
    )
    return {row[0] for row in rows}


async def test_live_knowledge_is_embedded_by_the_configured_provider(
    cloud_api: Api, fake: FakeServer
) -> None:
    api = cloud_api
    fake.state.reset()
    key, avatar_id = await avatar_for(api, "live")
    fact = "The Oxley Falls ledger is kept in vault nine."
    added = await api.client.post(
        f"/v1/avatars/{avatar_id}/knowledge", json={"type": "text", "content": fact},
        headers=api.auth(key),
    )  # fmt: skip
    assert added.json()["status"] == "ready"
    assert await spaces(api, added.json()["id"]) == {"openai:text-embedding-3-small"}
    assert [r.body["input"] for r in fake.state.requests] == [[fact]]
    conversation = (
        await api.client.post(
            "/v1/conversations",
            json={"avatar_id": avatar_id, "ai_provider": "openai"},
            headers=api.auth(key),
        )
    ).json()
    reply = await api.client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"content": "Where is the ledger kept?", "tts": False},
        headers=api.auth(key),
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["sources"][0]["knowledge_id"] == added.json()["id"]
    embedded = [r.body["input"] for r in fake.state.requests if r.path.endswith("/embeddings")]
    assert embedded[-1] == ["Where is the ledger kept?"]  # the question, as a query
    # The same question again: its vector comes from the cache, the sources are the same.
    again = await api.client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"content": "Where is the  ledger kept?", "tts": False},
        headers=api.auth(key),
    )
    assert again.json()["sources"] == reply.json()["sources"]
    asked = [r for r in fake.state.requests if r.path.endswith("/embeddings")]
    assert len(asked) == len(embedded)


async def test_test_mode_knowledge_never_reaches_the_cloud(
    cloud_api: Api, fake: FakeServer
) -> None:
    api = cloud_api
    fake.state.reset()
    key, avatar_id = await avatar_for(api, "test")
    added = await api.client.post(
        f"/v1/avatars/{avatar_id}/knowledge",
        json={"type": "qa", "question": "Vault?", "answer": "Nine."}, headers=api.auth(key),
    )  # fmt: skip
    assert await spaces(api, added.json()["id"]) == {"e5:multilingual-e5-small-q4"}
    assert fake.state.requests == []


async def test_knowledge_waits_in_the_background_while_the_provider_is_down(
    cloud_api: Api, fake: FakeServer
) -> None:
    api = cloud_api
    fake.state.reset()
    key, avatar_id = await avatar_for(api, "live")
    fake.state.faults.extend(["503", "503"])  # the inline attempt and the job's first
    added = await api.client.post(
        f"/v1/avatars/{avatar_id}/knowledge", json={"type": "text", "content": "Vault nine."},
        headers=api.auth(key),
    )  # fmt: skip
    assert added.status_code == 200 and added.json()["status"] == "processing"
    path = f"/v1/avatars/{avatar_id}/knowledge/{added.json()['id']}"

    async def ready() -> dict[str, Any] | None:
        body: dict[str, Any] = (await api.client.get(path, headers=api.auth(key))).json()
        return body if body["status"] == "ready" else None

    await wait_for(ready, 30, "the knowledge to be embedded once the provider is back", 0.2)
    assert await spaces(api, added.json()["id"]) == {"openai:text-embedding-3-small"}
