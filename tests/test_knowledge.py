"""An avatar's knowledge (SPEC section 9, text and Q&A items): adding, listing, removing,
and replies grounded in it with their ``sources`` — facts no model could know."""

from __future__ import annotations

from typing import Any

from tests.support import Api, ScriptedLLM, assert_error, scripted_live_key

FACT = (
    "The Zorblax 9 rocket is painted tangerine and launches every Thursday at 04:40 "
    "from Pier 17 in Port Quillan."
)


async def setup(api: Api) -> tuple[str, ScriptedLLM, dict[str, Any]]:
    key, llm = await scripted_live_key(api, "It is tangerine.")
    avatar = (
        await api.client.post(
            "/v1/avatars",
            json={"name": "Quill", "ai_provider": llm.name, "tts_provider": "browser"},
            headers=api.auth(key),
        )
    ).json()
    return key, llm, avatar


async def test_knowledge_items_and_grounded_replies(api: Api) -> None:
    key, llm, avatar = await setup(api)
    base = f"/v1/avatars/{avatar['id']}/knowledge"
    added = await api.client.post(
        base, json={"type": "text", "content": FACT, "metadata": {"src": "ops"}},
        headers=api.auth(key),
    )  # fmt: skip
    assert added.status_code == 200, added.text
    item = added.json()
    assert item["id"].startswith("kn_") and item["status"] == "ready" and item["type"] == "text"
    assert item["chunks"] == 1 and item["characters"] == len(FACT) and item["error"] is None
    assert item["title"] == FACT[:57].rsplit(" ", 1)[0] + "…"
    qa = (
        await api.client.post(
            base,
            json={
                "type": "qa",
                "question": "Who founded Port Quillan?",
                "answer": "Admiral Wenna Crask founded it in 1791.",
            },
            headers=api.auth(key),
        )
    ).json()
    assert qa["title"] == "Who founded Port Quillan?" and qa["status"] == "ready"
    listed = (await api.client.get(base, headers=api.auth(key))).json()["data"]
    assert [i["id"] for i in listed] == [item["id"], qa["id"]]
    assert (await api.client.get(f"{base}/{qa['id']}", headers=api.auth(key))).json() == qa

    conversation = await api.conversation(key, avatar_id=avatar["id"])
    path = f"/v1/conversations/{conversation['id']}/messages"
    reply = (
        await api.client.post(
            path, json={"content": "What colour is the Zorblax 9 rocket?"}, headers=api.auth(key)
        )
    ).json()
    assert "tangerine" in llm.requests[-1].messages[0].content  # the fact reached the model
    (source,) = [s for s in reply["sources"] if s["knowledge_id"] == item["id"]]
    assert source["title"] == item["title"] and "tangerine" in source["excerpt"]
    assert source["score"] > 0
    founder = (
        await api.client.post(
            path, json={"content": "Who founded Port Quillan?"}, headers=api.auth(key)
        )
    ).json()
    assert founder["sources"][0]["knowledge_id"] == qa["id"]
    assert "Wenna Crask" in llm.requests[-1].messages[0].content
    unrelated = (
        await api.client.post(path, json={"content": "Hello there!"}, headers=api.auth(key))
    ).json()
    assert unrelated["sources"] == []
    assert "knowledge base" not in llm.requests[-1].messages[0].content
    stored = (await api.client.get(path, headers=api.auth(key))).json()["data"]
    assert stored[1]["sources"] == reply["sources"] and "sources" not in stored[0]

    # Deleting an item removes its chunks and their index entries.
    deleted = await api.client.delete(f"{base}/{item['id']}", headers=api.auth(key))
    assert deleted.json() == {"id": item["id"], "object": "knowledge", "deleted": True}
    assert await api.state.knowledge.chunk_count(avatar["id"]) == 1  # the Q&A's
    again = (
        await api.client.post(
            path, json={"content": "What colour is the Zorblax 9 rocket?"}, headers=api.auth(key)
        )
    ).json()
    assert all(s["knowledge_id"] != item["id"] for s in again["sources"])
    assert "tangerine" not in llm.requests[-1].messages[0].content
    assert_error(await api.client.get(f"{base}/{item['id']}", headers=api.auth(key)), 404,
                 "knowledge_not_found")  # fmt: skip


async def test_knowledge_errors_and_ownership(api: Api) -> None:
    key, _llm, avatar = await setup(api)
    base = f"/v1/avatars/{avatar['id']}/knowledge"

    async def add(body: dict[str, Any], avatar_path: str = base, who: str = key) -> Any:
        return await api.client.post(avatar_path, json=body, headers=api.auth(who))

    assert_error(await add({"content": "x"}), 400, "missing_parameter", field="type")
    assert_error(await add({"type": "video"}), 400, "invalid_parameter", field="type",
                 reason="not_allowed")  # fmt: skip
    assert_error(await add({"type": "text", "content": " "}), 400, "invalid_parameter",
                 field="content", reason="empty")  # fmt: skip
    assert_error(await add({"type": "qa", "question": "Why?"}), 400, "missing_parameter",
                 field="answer")  # fmt: skip
    assert_error(await add({"type": "text", "content": "x", "colour": 1}), 400,
                 "invalid_parameter", field="colour", reason="unknown_field")  # fmt: skip
    preset = "/v1/avatars/aria-001/knowledge"
    assert_error(await add({"type": "text", "content": "x"}, preset), 403,
                 "insufficient_permissions", reason="preset_read_only")  # fmt: skip
    assert (await api.client.get(preset, headers=api.auth(key))).json()["data"] == []
    other = await api.key()
    assert_error(await add({"type": "text", "content": "x"}, who=other), 404,
                 "avatar_not_found")  # fmt: skip
    assert_error(await api.client.get(base, headers=api.auth(other)), 404, "avatar_not_found")
    assert_error(await api.client.get(f"{base}/kn_nope", headers=api.auth(key)), 404,
                 "knowledge_not_found")  # fmt: skip
    assert (await api.client.get(base, headers=api.auth(key))).json()["data"] == []


class SmallModel(ScriptedLLM):
    """A provider that follows facts best next to the question, one passage at a time."""

    knowledge_in_user_turn = True
    knowledge_passages = 1


async def test_a_small_model_gets_its_knowledge_next_to_the_question(api: Api) -> None:
    key, llm = await scripted_live_key(api, "It is tangerine.", SmallModel)
    fields = {"name": "Quill", "ai_provider": llm.name, "tts_provider": "browser"}
    avatar = (await api.client.post("/v1/avatars", json=fields, headers=api.auth(key))).json()
    base = f"/v1/avatars/{avatar['id']}/knowledge"
    for content in (FACT, "The Zorblax 9 rocket's crew eats tangerine sorbet on Thursdays."):
        await api.client.post(
            base, json={"type": "text", "content": content}, headers=api.auth(key)
        )
    conversation = await api.conversation(key, avatar_id=avatar["id"])
    question = "What colour is the Zorblax 9 rocket painted?"
    reply = await api.client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"content": question, "tts": False}, headers=api.auth(key),
    )  # fmt: skip
    body = reply.json()
    assert len(body["sources"]) == 1  # one passage, and sources say which
    request = llm.requests[-1]
    assert request.grounded is True
    system, asked = request.messages[0].content, request.messages[-1].content
    assert FACT not in system
    assert asked.startswith(FACT) and asked.endswith(question)
    stored = (
        await api.client.get(f"/v1/conversations/{conversation['id']}", headers=api.auth(key))
    ).json()["messages"]
    assert stored[0]["content"] == question  # the user's own words are what is kept
    plain = await api.client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"content": "Hello there!", "tts": False}, headers=api.auth(key),
    )  # fmt: skip
    assert plain.json()["sources"] == [] and llm.requests[-1].grounded is False
