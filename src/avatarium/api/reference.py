"""``GET /openapi.json`` and ``GET /docs``: the API's description, and a page to read it.

The page is rendered on the server from the same document, as plain HTML with one
stylesheet: it needs no script and no network, so it works on an air-gapped host and under
the page's Content-Security-Policy.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from avatarium import __version__
from avatarium.api.openapi import build_document
from avatarium.api.operation import Doc, documented
from avatarium.core.wire import WireJSONResponse as JSONResponse

_METHOD_ORDER = ["get", "post", "patch", "put", "delete"]


def document_of(request: Request) -> dict[str, Any]:
    """The app's document, built once (routes do not change while it runs)."""
    state = request.app.state
    cached: dict[str, Any] | None = getattr(state, "openapi_document", None)
    if cached is None:
        cached = build_document(request.app.routes, __version__)
        state.openapi_document = cached
    return cached


@documented(
    Doc(
        "This document: every route, parameter, answer and error code (OpenAPI 3.1)",
        response={"type": "object"},
        tag="reference",
    )
)
async def openapi_json(request: Request) -> Response:
    return JSONResponse(document_of(request), headers={"Cache-Control": "no-cache"})


@documented(
    Doc(
        "A readable API reference, rendered from /openapi.json",
        alternatives={"text/html": {"type": "string"}},
        tag="reference",
    )
)
async def docs_page(request: Request) -> Response:
    return HTMLResponse(render(document_of(request)), headers={"Cache-Control": "no-cache"})


def _e(text: object) -> str:
    return html.escape(str(text))


def _prose(text: str) -> str:
    """Escaped text with its `code spans` set as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _type(schema: dict[str, Any]) -> str:
    """A short, readable type of a schema."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    if "anyOf" in schema or "oneOf" in schema:
        return " | ".join(_type(s) for s in schema.get("anyOf") or schema["oneOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if "const" in schema:
        return f"<code>{_e(repr(schema['const']).strip(chr(39)))}</code>"
    if "enum" in schema:
        return " | ".join(f"<code>{_e(v)}</code>" for v in schema["enum"])
    if schema.get("format") == "binary":
        return "file"
    return _e(kind)


def _limits(schema: dict[str, Any]) -> str:
    notes = []
    for key, label in (("minLength", "min length"), ("maxLength", "max length"),
                       ("minimum", "min"), ("maximum", "max"), ("maxItems", "max items"),
                       ("default", "default")):  # fmt: skip
        if key in schema:
            notes.append(f"{label} {_e(schema[key])}")
    if schema.get("description"):
        notes.append(_e(schema["description"]))
    return "; ".join(notes)


def _fields(schema: dict[str, Any]) -> str:
    if "oneOf" in schema:
        return "".join(f"<p>One of these shapes:</p>{_fields(shape)}" for shape in schema["oneOf"])
    properties = schema.get("properties", {})
    if not properties:
        return "<p>An empty object, or nothing.</p>"
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{_e(name)}</code>{' <b>required</b>' if name in required else ''}</td>"
        f"<td>{_type(prop)}</td><td>{_limits(prop)}</td></tr>"
        for name, prop in properties.items()
    )
    return f"<table><tr><th>field</th><th>type</th><th>notes</th></tr>{rows}</table>"


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    out = [
        f'<section class="op" id="{_e(op["operationId"])}">',
        f'<h3><span class="method {method}">{method.upper()}</span> <code>{_e(path)}</code></h3>',
        f"<p>{_e(op['summary'])}</p>",
    ]
    if op.get("description"):
        out.append(f"<p>{_prose(op['description'])}</p>")
    security = op.get("security", [])
    auth = (
        "no key" if not security
        else "an API key" if security == [{"bearer": []}]
        else "a key is optional"
    )  # fmt: skip
    out.append(f"<p class='auth'>Authentication: {auth}.</p>")
    parameters = op.get("parameters", [])
    if parameters:
        rows = "".join(
            f"<tr><td><code>{_e(p['name'])}</code></td><td>{_e(p['in'])}</td>"
            f"<td>{_type(p['schema'])}</td><td>{_limits({**p['schema'], **p})}</td></tr>"
            for p in parameters
        )
        out.append(
            "<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th>"
            f"<th>notes</th></tr>{rows}</table>"
        )
    body = op.get("requestBody")
    if body:
        for media, content in body["content"].items():
            out.append(f"<h4>Body ({_e(media)})</h4>{_fields(content['schema'])}")
    answers = []
    for status, answer in op["responses"].items():
        content = answer.get("content", {})
        shapes = ", ".join(
            f"{_e(media)}: {_type(c['schema']) if 'allOf' not in c['schema'] else 'error'}"
            for media, c in content.items()
        )
        answers.append(
            f"<tr><td>{_e(status)}</td><td>{_e(answer['description'])}</td><td>{shapes}</td></tr>"
        )
    out.append(
        "<h4>Responses</h4><table><tr><th>status</th><th>meaning (error codes)</th>"
        f"<th>body</th></tr>{''.join(answers)}</table>"
    )
    out.append("</section>")
    return "".join(out)


def render(document: dict[str, Any]) -> str:
    """The reference page of an OpenAPI document."""
    by_tag: dict[str, list[str]] = defaultdict(list)
    for path, methods in document["paths"].items():
        for method in sorted(methods, key=_METHOD_ORDER.index):
            op = methods[method]
            by_tag[op["tags"][0]].append(_operation(path, method, op))
    info = document["info"]
    nav = "".join(f'<li><a href="#tag-{_e(t)}">{_e(t)}</a></li>' for t in by_tag)
    sections = "".join(
        f'<h2 id="tag-{_e(tag)}">{_e(tag)}</h2>{"".join(ops)}' for tag, ops in by_tag.items()
    )
    schemas = "".join(
        f'<section class="schema" id="schema-{_e(name)}"><h3>{_e(name)}</h3>'
        f"{_fields(schema)}</section>"
        for name, schema in document["components"]["schemas"].items()
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(info['title'])} {_e(info['version'])}</title>"
        "<link rel='stylesheet' href='/static/docs.css'></head><body>"
        f"<header><h1>{_e(info['title'])} <small>{_e(info['version'])}</small></h1>"
        f"<p>{_prose(info['description'])}</p>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1).</p>"
        f"<nav><ul>{nav}<li><a href='#schemas'>schemas</a></li></ul></nav></header>"
        f"<main>{sections}<h2 id='schemas'>Schemas</h2>{schemas}</main></body></html>"
    )
