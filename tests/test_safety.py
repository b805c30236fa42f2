"""Safety rules of a custom avatar (SPEC section 9): topics to avoid get a polite redirect,
escalation triggers hand the conversation over — without calling the model."""

from __future__ import annotations

import json
from typing import Any

from tests.support import Api, ScriptedLLM, scripted_live_key

HANDOFF = "A colleague from our team will take over from here."


async def setup(api: Api) -> tuple[str, ScriptedLLM, dict[str, Any]]:
    key, llm = await scripted_live_key(api, "Happy to help.")
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


async def safety_events(api: Api, conversation_id: str) -> list[tuple[str, str, Any]]:
    from sqlalchemy import text

    rows = await api.state.db.read_core(
        lambda c: c.execute(
            text(
                "SELECT action, message_id, detail FROM safety_events "
                "WHERE conversation_id = :c ORDER BY created_at"
            ),
            {"c": conversation_id},
        ).all()
    )
    # A raw query: SQLite hands the JSON column back as text, PostgreSQL as a value.
    return [(str(r[0]), str(r[1]), json.loads(r[2]) if isinstance(r[2], str) else r[2])
            for r in rows]  # fmt: skip


async def test_topics_are_matched_by_meaning_not_only_by_name(api: Api) -> None:
    key, llm, avatar = await setup(api)
    conversation = await api.conversation(key, avatar_id=avatar["id"])
    for message, topic in (
        ("Who should I vote for in the next election?", "politics"),
        ("Which pills should I take for my headache?", "medical advice"),
    ):
        reply = await send(api, key, conversation["id"], message)
        assert reply["safety"] == {"action": "topic_blocked", "topic": topic}, message
    for message in ("What time does the store open?", "Hello there!", "Tell me a joke."):
        reply = await send(api, key, conversation["id"], message)
        assert reply["safety"] is None, message
    assert llm.calls == 3


async def test_every_safety_action_is_recorded(api: Api) -> None:
    key, _, avatar = await setup(api)
    conversation = await api.conversation(key, avatar_id=avatar["id"])
    blocked = await send(api, key, conversation["id"], "What do you think of politics?")
    await send(api, key, conversation["id"], "Nice weather today.")
    handed = await send(api, key, conversation["id"], "I want to speak to a human please")
    events = await safety_events(api, conversation["id"])
    assert events == [
        ("topic_blocked", blocked["id"], {"action": "topic_blocked", "topic": "politics"}),
        ("escalated", handed["id"], {"action": "escalated", "trigger": "asked_for_human"}),
    ]


async def answering(api: Api, reply: str) -> tuple[str, ScriptedLLM, dict[str, Any]]:
    """An avatar whose model always replies ``reply``, handed over on failed answers."""
    key, llm = await scripted_live_key(api, reply)
    avatar = (
        await api.client.post(
            "/v1/avatars",
            json={"name": "Quill", "ai_provider": llm.name, "tts_provider": "browser",
                  "escalation": {"triggers": ["failed_answers"], "message": HANDOFF}},
            headers=api.auth(key),
        )
    ).json()  # fmt: skip
    return key, llm, avatar


async def test_three_failed_answers_in_a_row_hand_the_conversation_over(api: Api) -> None:
    key, llm, avatar = await answering(api, "Sorry, I don't know that.")
    knowledge = await api.client.post(
        f"/v1/avatars/{avatar['id']}/knowledge",
        json={"type": "text", "content": "The Brannock depot opens at 05:10 on weekdays."},
        headers=api.auth(key),
    )
    assert knowledge.status_code == 200
    conversation = await api.conversation(key, avatar_id=avatar["id"])
    cid = conversation["id"]
    first = await send(api, key, cid, "What is the airspeed of a swallow?")
    second = await send(api, key, cid, "Which team won the cup in 1930?")
    assert first["safety"] is None and second["safety"] is None and llm.calls == 2
    # A question the knowledge answers resets the count, even if the reply declines.
    answered = await send(api, key, cid, "When does the Brannock depot open?")
    assert answered["sources"] and answered["safety"] is None
    for question in ("Who painted the moon?", "How tall is a gribble?"):
        assert (await send(api, key, cid, question))["safety"] is None
    handed = await send(api, key, cid, "What colour is a quasar's hat?")
    assert handed["content"] == HANDOFF
    assert handed["safety"] == {"action": "escalated", "trigger": "failed_answers"}
    assert llm.calls == 5  # the third failure never reached the model
    after = (await api.client.get(f"/v1/conversations/{cid}", headers=api.auth(key))).json()
    assert after["escalated"] is True and after["escalation_reason"] == "failed_answers"
    assert [e[0] for e in await safety_events(api, cid)] == ["escalated"]


async def test_replies_that_answer_do_not_count_as_failed(api: Api) -> None:
    key, _, avatar = await answering(api, "It is a lovely question.")
    conversation = await api.conversation(key, avatar_id=avatar["id"])
    for question in ("One?", "Two?", "Three?", "Four?"):
        assert (await send(api, key, conversation["id"], question))["safety"] is None
