"""Property-based fuzzing of every route's documented fields: whatever a client sends, the
answer is never a 5xx, and every error is the documented envelope.

Values are drawn from all of JSON (deep nesting, huge integers, floats, every Unicode
character including lone surrogates and NUL), for the fields each route documents plus
unknown ones, and for the query parameters and path pieces of the GET routes; some bodies
are not JSON at all. Runs against SQLite and PostgreSQL (which refuses NUL in text).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from avatarium.app import create_app
from avatarium.providers.registry import ProviderRegistry
from tests.conftest import make_settings
from tests.support import OffsetClock

ANY_CHAR = st.characters(exclude_categories=())  # lone surrogates and NUL included
TEXT = st.text(ANY_CHAR, max_size=30)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | st.sampled_from(["", " ", "aria-001", "local", "espeak", "browser", "openai", "en_US"])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
RAW_BODIES = st.sampled_from(
    [
        b"",
        b"null",
        b"[]",
        b"{",
        b"\xff\xfe{}",
        b'{"a": 1e999999}',
        b"[" * 5_000 + b"]" * 5_000,
        b'{"content": ' + b"7" * 5_000 + b"}",
        b'{"content": "\\ud800"}',
        b'{"content": "\xed\xa0\x80"}',
    ]
)

ROUTES: dict[str, list[str]] = {
    "/v1/conversations": [
        "avatar_id", "ai_provider", "tts_provider", "voice_id", "model", "system_prompt",
        "metadata", "byok", "stt_provider", "language",
    ],
    "/v1/conversations/{conversation}/messages": ["content", "stream", "tts"],
    "/v1/conversations/{conversation}/end": [],
    "/v1/conversations/{conversation}/client_tokens": ["expires_in"],
    "/v1/avatars/{avatar}/knowledge": [
        "type", "content", "title", "question", "answer", "metadata",
    ],
    "/v1/tts": ["text", "provider", "voice"],
    "/v1/avatars": [
        "name", "description", "personality", "greeting", "traits", "tone", "language",
        "voices", "ai_provider", "ai_model", "tts_provider", "stt_provider",
        "topics_to_avoid", "escalation", "appearance", "metadata",
    ],
    "/v1/tts/preview": ["voice", "provider"],
}  # fmt: skip
GET_ROUTES: dict[str, list[str]] = {
    "/v1/conversations": ["limit", "status", "avatar_id", "starting_after"],
    "/v1/conversations/{conversation}": [],
    "/v1/conversations/{conversation}/messages": ["limit", "order", "starting_after"],
    "/v1/conversations/{conversation}/messages/{piece}": [],
    "/v1/avatars/{piece}": [],
    "/v1/avatars/{piece}/model": [],
    "/v1/tts/voices": ["provider"],
    "/v1/audio/{piece}": ["expires", "sig"],
    "/v1/usage": [],
}


def _bodies(fields: list[str]) -> st.SearchStrategy[bytes]:
    documented = (
        st.fixed_dictionaries({}, optional={name: JSON_VALUES for name in fields})
        if fields
        else st.just({})
    )
    with_extra = st.tuples(documented, st.dictionaries(TEXT, JSON_VALUES, max_size=2)).map(
        lambda pair: {**pair[1], **pair[0]}
    )
    nested = st.builds(
        lambda body, field, value: {**body, field: value},
        documented,
        st.sampled_from(["metadata", "byok"]),
        st.dictionaries(TEXT, JSON_VALUES, max_size=4),
    )
    as_json = (documented | with_extra | nested).map(lambda b: json.dumps(b).encode())
    return as_json | RAW_BODIES


def assert_contract(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        error = body["error"]
        assert isinstance(error["code"], str) and error["code"], body
        assert isinstance(error["message"], str) and error["message"], body
        assert error["request_id"] == response.headers["x-request-id"], body


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    settings_ = make_settings(tmp_path_factory.mktemp(f"fuzz-{request.param}"), url)
    app = create_app(settings_, clock=OffsetClock(), providers=ProviderRegistry(settings_))
    with TestClient(app, raise_server_exceptions=False) as client:
        state = app.state.avatarium
        portal = client.portal
        assert portal is not None
        account = portal.call(state.accounts.ensure, f"fuzz-{request.param}", "enterprise")
        # Thousands of requests a minute: the fuzzer tests inputs, not the rate limit.
        portal.call(
            functools.partial(state.accounts.set_limits, f"fuzz-{request.param}", rpm=10_000_000)
        )
        issued = portal.call(state.keys.create, account)
        headers = {"Authorization": f"Bearer {issued.secret}"}
        created = client.post(
            "/v1/conversations",
            json={"avatar_id": "aria-001", "tts_provider": "browser"},
            headers=headers,
        )
        assert created.status_code == 200, created.text
        yield client, headers, created.json()["id"]


FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: a failure here is reproducible
)


@pytest.mark.parametrize("route", list(ROUTES))
def test_post_routes_never_answer_5xx(
    fuzzed: tuple[TestClient, dict[str, str], str], route: str
) -> None:
    client, headers, conversation = fuzzed
    avatar = ""
    if "{avatar}" in route:  # an avatar of the fuzzer's own, to add knowledge to
        avatar = client.post("/v1/avatars", json={"name": "Fuzz"}, headers=headers).json()["id"]
    path = route.format(conversation=conversation, avatar=avatar)

    @FUZZ
    @given(
        body=_bodies(ROUTES[route]),
        content_type=st.sampled_from(
            ["application/json"] * 4 + ["text/plain", "application/json; charset=utf-8"]
        ),
    )
    def check(body: bytes, content_type: str) -> None:
        response = client.post(
            path, content=body, headers={**headers, "Content-Type": content_type}
        )
        assert_contract(response)

    check()


PIECES = st.text(ANY_CHAR.filter(lambda c: c not in "/?#"), min_size=1, max_size=20)


@pytest.mark.parametrize("route", list(GET_ROUTES))
def test_get_routes_never_answer_5xx(
    fuzzed: tuple[TestClient, dict[str, str], str], route: str
) -> None:
    client, headers, conversation = fuzzed

    @FUZZ
    @given(
        piece=PIECES,
        params=st.fixed_dictionaries({}, optional={name: TEXT for name in GET_ROUTES[route]}),
        with_key=st.booleans(),
    )
    def check(piece: str, params: dict[str, str], with_key: bool) -> None:
        # Any character, percent-encoded as a client library would (surrogates as UTF-8
        # bytes of their own, which the server must take apart safely).
        encoded = quote(piece.encode("utf-8", "surrogatepass"), safe="")
        safe_path = route.format(conversation=conversation, piece=encoded)
        clean = {
            k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            for k, v in params.items()
        }
        response = client.get(safe_path, params=clean, headers=headers if with_key else {})
        assert_contract(response)

    check()


# Uploads: the form's text fields, and file parts that are noise, truncated containers or
# headers of the documented formats followed by garbage.
AUDIO_HEADS = [b"", b"RIFF", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"OggS\x00\x02",
               b"\x1a\x45\xdf\xa3", b"ID3\x04\x00", b"\xff\xfb\x90"]  # fmt: skip
UPLOADS = st.builds(
    lambda head, tail: head + tail, st.sampled_from(AUDIO_HEADS), st.binary(max_size=600)
)
MULTIPART_ROUTES = {
    "/v1/transcriptions": ("file", ["language", "provider"]),
    "/v1/conversations/{conversation}/messages": ("audio", ["stream", "tts"]),
}


@pytest.mark.parametrize("route", list(MULTIPART_ROUTES))
def test_upload_routes_never_answer_5xx(
    fuzzed: tuple[TestClient, dict[str, str], str], route: str
) -> None:
    client, headers, conversation = fuzzed
    path = route.format(conversation=conversation)
    file_field, fields = MULTIPART_ROUTES[route]

    @FUZZ
    @given(
        data=st.fixed_dictionaries({}, optional={name: TEXT for name in [*fields, "extra"]}),
        upload=UPLOADS,
        file_name=st.sampled_from([file_field, "other"]),
        filename=TEXT,
    )
    def check(data: dict[str, str], upload: bytes, file_name: str, filename: str) -> None:
        clean = {
            k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            for k, v in data.items()
        }
        name = filename.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        response = client.post(
            path, data=clean, files={file_name: (name or "x", upload)}, headers=headers
        )
        assert_contract(response)

    check()


@pytest.mark.parametrize("route", list(MULTIPART_ROUTES))
def test_raw_multipart_bodies_never_answer_5xx(
    fuzzed: tuple[TestClient, dict[str, str], str], route: str
) -> None:
    client, headers, conversation = fuzzed
    path = route.format(conversation=conversation)

    @FUZZ
    @given(
        body=st.binary(max_size=400) | st.builds(
            lambda parts: b"\r\n".join(parts),
            st.lists(st.sampled_from([
                b"--b", b"--b--", b'Content-Disposition: form-data; name="file"; filename="a"',
                b'Content-Disposition: form-data; name="audio"', b"Content-Type: audio/wav",
                b"", b"RIFF", b"\xff\xfe", b'Content-Disposition: form-data; name="\xc3"',
            ]), max_size=12),
        ),
        boundary=st.sampled_from(["b", "", "\u00e9", "x" * 80]),
    )  # fmt: skip
    def check(body: bytes, boundary: str) -> None:
        content_type = f"multipart/form-data; boundary={boundary}".encode()
        response = client.post(
            path, content=body, headers={**headers, "Content-Type": content_type}
        )
        assert_contract(response)

    check()


def test_the_fuzzer_reaches_the_handlers(fuzzed: tuple[TestClient, dict[str, str], str]) -> None:
    """Guard against a fuzzer that only ever hits the first check: a valid body succeeds."""
    client, headers, _ = fuzzed
    conversation = client.post(
        "/v1/conversations", json={"avatar_id": "aria-001"}, headers=headers
    ).json()["id"]
    ok = client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"content": "Hello", "tts": False},
        headers=headers,
    )
    assert ok.status_code == 200, ok.text
