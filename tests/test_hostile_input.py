"""Input an attacker would send gets its documented 4xx, never a 500 (each case once was)."""

from __future__ import annotations

import pytest

from tests.asgi_live import open_socket
from tests.support import Api, assert_error

DEEP = b"[" * 10_000 + b"]" * 10_000
HUGE_INT = b'{"content": ' + b"9" * 5_000 + b"}"


async def _audio_path(api: Api, key: str) -> str:
    conversation = await api.conversation(key)
    reply = await api.client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"content": "Hi"},
        headers=api.auth(key),
    )
    url: str = reply.json()["audio_url"]
    return url.removeprefix("http://testserver").split("?")[0]


@pytest.mark.parametrize(
    "query",
    [
        "expires=9999999999&sig=%C3%A9%C3%A9%C3%A9",  # a non-ASCII signature
        "expires=%C2%B2&sig=abc",  # "²": isdigit() is true, int() fails
        "expires=" + "9" * 5_000 + "&sig=abc",  # past int()'s digit limit
        "expires=%EF%BC%91%EF%BC%92&sig=abc",  # full-width digits
    ],
)
async def test_hostile_audio_urls_are_not_found(api: Api, query: str) -> None:
    key = await api.key()
    path = await _audio_path(api, key)
    assert_error(await api.client.get(f"{path}?{query}"), 404, "not_found")


async def test_a_non_ascii_client_token_is_an_invalid_key(api: Api) -> None:
    key = await api.key()
    conversation = await api.conversation(key)
    token = "ct_" + "é" * 10 + ".ü"
    response = await api.client.get(
        f"/v1/conversations/{conversation['id']}",
        headers={"Authorization": f"Bearer {token}".encode()},
    )
    assert_error(response, 401, "invalid_api_key")


async def _post_routes(api: Api, key: str) -> list[str]:
    conversation = (await api.conversation(key))["id"]
    return [
        "/v1/conversations",
        f"/v1/conversations/{conversation}/messages",
        f"/v1/conversations/{conversation}/end",
        f"/v1/conversations/{conversation}/client_tokens",
        "/v1/tts",
        "/v1/tts/preview",
    ]


@pytest.mark.parametrize(
    "body", [DEEP, b'{"a": ' + DEEP + b"}", HUGE_INT], ids=["deep", "deep-in-object", "huge-int"]
)
async def test_hostile_json_is_invalid_json_on_every_post_route(api: Api, body: bytes) -> None:
    key = await api.key()
    for path in await _post_routes(api, key):
        response = await api.client.post(
            path, content=body, headers={**api.auth(key), "Content-Type": "application/json"}
        )
        assert_error(response, 400, "invalid_request", reason="invalid_json")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("send", b'{"content": "hi \\ud800"}', "content"),
        ("send", b'{"content": "nul \\u0000 inside"}', "content"),
        ("create", b'{"avatar_id": "aria-001", "system_prompt": "x\\udfff"}', "system_prompt"),
        ("create", b'{"avatar_id": "aria-001", "model": "\\ud83d"}', "model"),
        ("create", b'{"avatar_id": "aria-001", "metadata": {"\\ud800": "v"}}', None),
        ("create", b'{"avatar_id": "aria-001", "metadata": {"k": "\\ud800"}}', "metadata.k"),
        ("tts", b'{"text": "say \\ud800 this"}', "text"),
        ("preview", b'{"voice": "\\udc00"}', "voice"),
    ],
)
async def test_lone_surrogates_are_invalid_parameters(
    api: Api, path: str, body: bytes, field: str | None
) -> None:
    key = await api.key()
    conversation = (await api.conversation(key))["id"]
    url = {
        "send": f"/v1/conversations/{conversation}/messages",
        "create": "/v1/conversations",
        "tts": "/v1/tts",
        "preview": "/v1/tts/preview",
    }[path]
    response = await api.client.post(
        url, content=body, headers={**api.auth(key), "Content-Type": "application/json"}
    )
    error = assert_error(response, 400, "invalid_parameter", reason="invalid_type")
    if field is not None:
        assert error["details"]["field"] == field
    else:
        assert error["details"]["field"].startswith("metadata.")
    # Nothing was stored by the refused send.
    messages = await api.client.get(
        f"/v1/conversations/{conversation}/messages", headers=api.auth(key)
    )
    assert messages.json()["data"] == []


async def test_a_deep_websocket_frame_is_an_error_frame_and_the_socket_stays_open(
    api: Api,
) -> None:
    key = await api.key()
    conversation = (await api.conversation(key))["id"]
    socket = open_socket(api.app, f"/v1/conversations/{conversation}/ws", api.auth(key))
    assert (await socket.receive() or {})["type"] == "ready"
    await socket.send(DEEP.decode())
    frame = await socket.receive()
    assert frame is not None and frame["type"] == "error", frame
    assert frame["error"]["code"] == "invalid_request"
    assert frame["error"]["details"]["reason"] == "invalid_json"
    await socket.send('{"type": "message", "content": "\\ud800"}')
    frame = await socket.receive()
    assert frame is not None and frame["error"]["code"] == "invalid_parameter", frame
    await socket.send({"type": "ping"})
    assert await socket.receive() == {"type": "pong"}
    await socket.close()


async def test_a_non_ascii_websocket_token_closes_with_4401(api: Api) -> None:
    key = await api.key()
    conversation = (await api.conversation(key))["id"]
    socket = open_socket(api.app, f"/v1/conversations/{conversation}/ws?token=ct_%C3%A9.%C3%BC")
    frame = await socket.receive()
    assert frame is not None and frame["error"]["code"] == "invalid_api_key", frame
    assert await socket.receive() is None
    assert socket.close_code == 4401
