"""Safety rules of a custom avatar (SPEC section 9): topics to avoid get a polite redirect,
escalation triggers hand the conversation over — without calling the model."""

from __future__ import annotations

import secrets
from typing import Any

from avatarium.providers.registry import ProviderSpec
from tests.support import Api, ScriptedLLM

HANDOFF = "A colleague from our team will take over from here."


async def setup(api: Api) -> tuple[str, ScriptedLLM, dict[str, Any]]:
    llm = ScriptedLLM(f"scripted-{secrets.token_hex(3)}", text="Happy to help.")
    api.state.providers.register(ProviderSpec(llm.name, "llm", lambda _s: llm))
    account = await api.state.accounts.ensure(f"acct-safe-{secrets.token_hex(4)}", "enterprise")
    key = (await api.state.keys.create(account, mode="live")).secret
    avatar = (
        await api.client.post(
            "/v1/avatars",
            json={
                "name": "Quill", "ai_provider": llm.name, "tts_provider": "espeak",
                "topics_to_avoid": ["politics", "medical advice"],
                "escalation": {"triggers": ["asked_for_human", "negative_sentiment",
                                            {"keywords": ["refund"]}],
                               "message": HANDOFF},
            },
            headers=api.auth(key),
        )
    ).json()  # fmt: skip
    return key, llm, avatar


async def send(api: Api, key: str, conversation_id: str, content: str) -> dict[str, Any]:
    response = await api.client.post(
        f"/v1/conversations/{conversation_id}/messages",
        json={"content": content},
        headers=api.auth(key),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_topics_to_avoid_get_a_redirect(api: Api) -> None:
    key, llm, avatar = await setup(api)
    conversation = await api.conversation(key, avatar_id=avatar["id"])
    blocked = await send(api, key, conversation["id"], "What do you think of political parties?")
    assert blocked["safety"] == {"action": "topic_blocked", "topic": "politics"}
    assert "politics" in blocked["content"] and blocked["audio"] is not None  # spoken too
    medical = await send(api, key, conversation["id"], "Can you give me medical advice?")
    assert medical["safety"]["topic"] == "medical advice"
    assert llm.calls == 0  # the model never saw them
    normal = await send(api, key, conversation["id"], "How are you today?")
    assert normal["safety"] is None and normal["content"].strip() == "Happy to help."
    assert llm.calls == 1
    after = (
        await api.client.get(f"/v1/conversations/{conversation['id']}", headers=api.auth(key))
    ).json()
    assert after["escalated"] is False and after["message_count"] == 6
    assert after["messages"][1]["safety"]["action"] == "topic_blocked"


async def test_escalation_triggers_hand_the_conversation_over(api: Api) -> None:
    key, llm, avatar = await setup(api)
    for message, trigger in (
        ("Can I talk to a real person please?", "asked_for_human"),
        ("I want my refund now.", "keywords"),
        ("This is useless, I am so angry and frustrated with you!", "negative_sentiment"),
    ):
        conversation = await api.conversation(key, avatar_id=avatar["id"])
        assert conversation["escalated"] is False and conversation["escalation_reason"] is None
        reply = await send(api, key, conversation["id"], message)
        assert reply["content"] == HANDOFF
        assert reply["safety"]["action"] == "escalated"
        assert reply["safety"]["trigger"] == trigger
        after = (
            await api.client.get(f"/v1/conversations/{conversation['id']}", headers=api.auth(key))
        ).json()
        assert after["escalated"] is True and after["escalation_reason"] == trigger
    assert llm.calls == 0
    # Mild displeasure is not a hand-off.
    calm = await api.conversation(key, avatar_id=avatar["id"])
    mild = await send(api, key, calm["id"], "I am not happy with this.")
    assert mild["safety"] is None and llm.calls == 1
    # A preset has no rules: the same words go to the model.
    plain = await api.conversation(key, avatar_id="aria-001", ai_provider=llm.name)
    reply = await send(api, key, plain["id"], "Can I talk to a real person please?")
    assert reply["safety"] is None and llm.calls == 2
