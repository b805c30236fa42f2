"""History trimming against the real embedded model's tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatarium.conversations.prompt import Turn, build_prompt
from avatarium.core.errors import InvalidParameterError
from avatarium.providers.llm.local import LocalProvider
from tests.conftest import make_settings
from tests.support import Api


def history(turns: int) -> list[Turn]:
    messages = []
    for index in range(turns * 2):
        role = "user" if index % 2 == 0 else "assistant"
        messages.append(Turn(role, f"Turn {index // 2} {role}: " + "words and more words " * 12))
    return messages


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> LocalProvider:
    settings = make_settings(
        tmp_path_factory.mktemp("p"), local_context_tokens=512, local_max_tokens=64
    )
    return LocalProvider(settings)


def test_everything_is_kept_when_it_fits(small_model: LocalProvider) -> None:
    prompt = build_prompt(small_model, "Be brief.", history(1), "And now?")
    assert [m.role for m in prompt] == ["system", "user", "assistant", "user"]


def test_oldest_turns_go_first_and_the_prompt_fits(small_model: LocalProvider) -> None:
    turns = history(12)
    prompt = build_prompt(small_model, "Be brief.", turns, "What did I say last?")
    assert prompt[0].role == "system" and prompt[-1].content == "What did I say last?"
    assert prompt[1].role == "user"  # never starts mid-turn
    kept = prompt[1:-1]
    assert 0 < len(kept) < len(turns)
    assert [m.content for m in kept] == [m.content for m in turns[-len(kept) :]]
    budget = small_model.context_tokens - small_model.max_reply_tokens
    assert small_model.count_tokens(prompt) <= budget
    # One more turn would not have fitted.
    longer = [
        prompt[0],
        *[
            type(prompt[1])(m.role, m.content)  # type: ignore[arg-type]
            for m in turns[-len(kept) - 2 :]
        ],
        prompt[-1],
    ]
    assert small_model.count_tokens(longer) > budget


def test_a_message_too_long_for_the_model_is_refused(small_model: LocalProvider) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        build_prompt(small_model, "Be brief.", [], "lorem ipsum " * 400)
    assert caught.value.details == {"field": "content", "reason": "too_long"}


def test_the_model_file_comes_from_the_package(tmp_path: Path) -> None:
    provider = LocalProvider(make_settings(tmp_path))
    assert provider.engine().model_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_counts_add_up_to_the_whole_prompt(small_model: LocalProvider) -> None:
    from avatarium.providers.llm.local_engine import chatml

    prompt = build_prompt(small_model, "Be brief, and kind.", history(2), "Ünïcode? ✓ 3.5 ok")
    whole = len(small_model.engine().tokenize(chatml([(m.role, m.content) for m in prompt])))
    assert small_model.count_tokens(prompt) == whole


async def test_a_send_reads_only_the_newest_messages(api: Api) -> None:
    """However long the conversation, a send reads at most history_max_messages of it."""
    from avatarium.providers.registry import ProviderSpec
    from tests.support import ScriptedLLM

    llm = ScriptedLLM(f"recording-{api.backend}", text="Noted.")
    api.state.providers.register(ProviderSpec(llm.name, "llm", lambda _s: llm))
    key = await api.key(mode="live")
    conversation = await api.conversation(key, ai_provider=llm.name, tts_provider="browser")
    path = f"/v1/conversations/{conversation['id']}/messages"
    settings = api.state.settings
    saved = settings.history_max_messages
    settings.history_max_messages = 4
    try:
        for index in range(5):
            response = await api.client.post(
                path, json={"content": f"message {index}"}, headers=api.auth(key)
            )
            assert response.status_code == 200, response.text
    finally:
        settings.history_max_messages = saved
    last = llm.requests[-1].messages
    assert [m.content for m in last[1:]] == [
        "message 2", "Noted.", "message 3", "Noted.", "message 4"
    ]  # fmt: skip
