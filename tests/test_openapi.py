"""``/openapi.json`` and ``/docs``: every route is in the document, the document is valid
OpenAPI 3.1, the page renders it without script or network, a Schemathesis run over every
operation (with a key) finds no 5xx and no answer the schema does not allow, and the Python
client knows every error code the server can answer with."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate as validate_openapi
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Mount, Route, WebSocketRoute

from avatarium.core.errors import all_error_classes
from avatarium_client.errors import STATUS_OF_CODE
from tests.server_process import Server, free_port
from tests.support import Api
from tests.test_limits_workers import cli

pytestmark = pytest.mark.e2e
EXAMPLES = 12  # per operation


@pytest.fixture
async def document(api: Api) -> dict[str, Any]:
    answer = await api.client.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    return dict(answer.json())


async def test_every_route_is_in_the_document(api: Api, document: dict[str, Any]) -> None:
    paths = document["paths"]
    for route in api.app.routes:
        if isinstance(route, Mount):
            continue  # the static files
        assert isinstance(route, Route | WebSocketRoute), route
        assert route.path in paths, f"{route.path} is missing from /openapi.json"
        methods = {"GET"} if isinstance(route, WebSocketRoute) else route.methods or set()
        for method in methods - {"HEAD"}:
            operation = paths[route.path].get(method.lower())
            assert operation is not None, f"{method} {route.path} is missing"
            assert operation["summary"], f"{method} {route.path} has no summary"


async def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate_openapi(document)


def codes_of(operation: dict[str, Any]) -> dict[str, set[str]]:
    """The error codes an operation documents, by status."""
    found: dict[str, set[str]] = {}
    for status, answer in operation["responses"].items():
        schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
        for part in schema.get("allOf", []):
            error = part.get("properties", {}).get("error", {}).get("properties", {})
            found.setdefault(status, set()).update(error.get("code", {}).get("enum", []))
    return found


async def test_each_operation_names_its_error_codes(document: dict[str, Any]) -> None:
    known = {cls.code: cls.status_code for cls in all_error_classes()}
    named: set[str] = set()
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, codes in codes_of(operation).items():
                for code in codes:
                    assert known[code] == int(status), (operation["operationId"], code, status)
                named |= codes
    # Every code is answered by some operation (405 comes from the router, on any path).
    assert named == set(known) - {"method_not_allowed"}
    send = document["paths"]["/v1/conversations/{conversation_id}/messages"]["post"]
    of_send = set().union(*codes_of(send).values())
    assert {
        "quota_exceeded",
        "rate_limit_exceeded",
        "ai_provider_error",
        "missing_api_key",
        "conversation_not_found",
        "request_in_progress",
        "invalid_parameter",
    } <= of_send


async def test_the_reference_page_renders_every_operation_offline(
    api: Api, document: dict[str, Any]
) -> None:
    page = await api.client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    text = page.text
    assert "<script" not in text  # nothing to run, nothing to fetch
    assert not re.search(r"""(src|href)=["']https?://""", text)
    for path, operations in document["paths"].items():
        for operation in operations.values():
            assert f'id="{operation["operationId"]}"' in text, path
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in text
    css = await api.client.get("/static/docs.css")
    assert css.status_code == 200


def test_the_client_knows_every_error_code() -> None:
    server = {cls.code: cls.status_code for cls in all_error_classes()}
    assert server == STATUS_OF_CODE


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A server process and a key for it (enterprise, limits out of reach)."""
    data_dir = tmp_path_factory.mktemp("openapi")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AVATARIUM_")},
        "AVATARIUM_DATA_DIR": str(data_dir),
        "AVATARIUM_SECRET_KEY": "openapi-fuzz-secret",
        # Replies as short as they come: the run makes hundreds of calls.
        "AVATARIUM_LOCAL_MAX_TOKENS": "3",
        "AVATARIUM_LOG_LEVEL": "warning",
        "AVATARIUM_WEBHOOK_ALLOW_PRIVATE": "true",  # a loopback target: nothing leaves
    }
    issued = json.loads(
        cli(env, "keys", "create", "--account", "fuzz", "--tier", "enterprise", "--json")
    )
    cli(env, "accounts", "set-limits", "fuzz", "--rpm", "1000000", "--concurrent", "1000")
    server = Server(Path(data_dir), free_port(), env)
    try:
        server.wait_ready()
        yield server.base, issued["key"]
    finally:
        server.stop()


def real_things(base: str, key: str) -> dict[str, list[str]]:
    """A conversation with a reply, an avatar with knowledge, a webhook: their ids."""
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=auth, timeout=60) as client:
        conversation = client.post("/v1/conversations", json={"avatar_id": "aria-001"}).json()
        reply = client.post(
            f"/v1/conversations/{conversation['id']}/messages", json={"content": "Hi"}
        ).json()
        avatar = client.post("/v1/avatars", json={"name": "Fuzzed"}).json()
        knowledge = client.post(
            f"/v1/avatars/{avatar['id']}/knowledge", json={"type": "text", "content": "Facts."}
        ).json()
        hook = client.post(
            "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["*"]}
        ).json()
    audio = httpx.URL(reply["audio"]["url"])
    return {
        "conversation_id": [conversation["id"]],
        "message_id": [reply["id"]],
        "avatar_id": [avatar["id"], "aria-001"],
        "knowledge_id": [knowledge["id"]],
        "webhook_id": [hook["id"]],
        "name": [audio.path.rsplit("/", 1)[1]],
        "expires": [audio.params["expires"]],
        "sig": [audio.params["sig"]],
    }


def test_no_5xx_and_no_answer_outside_the_schema(live: tuple[str, str]) -> None:
    """Schemathesis generates requests for every operation from the document and checks each
    answer: never a 5xx, a documented status and content type, a body the schema allows."""
    base, key = live
    document = httpx.get(f"{base}/openapi.json").json()
    # The socket is a WebSocket: its frames are text in the document, not HTTP to fuzz.
    del document["paths"]["/v1/conversations/{conversation_id}/ws"]
    # Random ids only ever reach the 404s: point the path parameters at real things too, so
    # the answers of the happy paths are checked against their schemas as well.
    for name, values in real_things(base, key).items():
        for operations in document["paths"].values():
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    if parameter["name"] == name and parameter["in"] in ("path", "query"):
                        parameter["schema"] = {"enum": values}
    schema = schemathesis.openapi.from_dict(document)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    failures: list[str] = []
    operations = 0
    # What ends or deletes things goes last, so that the rest finds them.
    for operation in sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda op: (2 if op.method.upper() == "DELETE" else op.path.endswith("/end"), op.label),
    ):
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            case.call_and_validate(
                base_url=base, headers={"Authorization": f"Bearer {key}"}, checks=checks
            )

        try:
            run()
        except (Exception, BaseExceptionGroup) as failure:  # all operations, all failures
            failures.append(f"{operation.label}: {failure}")
    assert operations >= 40
    assert not failures, "\n\n".join(failures)
