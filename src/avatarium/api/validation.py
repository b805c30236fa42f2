"""Declarative checks of JSON bodies and query strings, raising the documented 400s.

A field spec says what a field must be; :func:`validate` reports the first problem found
(missing first, then unknown fields, then each field in declared order). The same specs
describe the API in its OpenAPI document (:mod:`avatarium.api.openapi`), so what is
documented is what is enforced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from avatarium.core.errors import InvalidParameterError, MissingParameterError

_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    dict: "an object",
    int: "an integer",
    list: "a list",
}


@dataclass(frozen=True, slots=True)
class Field:
    """One accepted body field."""

    name: str
    type: type
    required: bool = False
    max_length: int | None = None
    not_blank: bool = False  # "" and whitespace-only are rejected as "empty"
    allowed: Sequence[str] | None = None
    minimum: int | None = None  # for integers
    maximum: int | None = None
    description: str = ""
    # More JSON Schema for the document, where the checks go deeper than the type (a list's
    # items, an object's keys); the handler enforces it.
    schema: Mapping[str, Any] | None = None

    def json_schema(self) -> dict[str, Any]:
        """This field as JSON Schema."""
        schema: dict[str, Any] = {"type": _SCHEMA_TYPES[self.type]}
        if self.not_blank:
            schema["minLength"] = 1
            schema["pattern"] = r"\S"
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.allowed is not None:
            schema["enum"] = list(self.allowed)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.description:
            schema["description"] = self.description
        schema.update(self.schema or {})
        return schema


_SCHEMA_TYPES = {str: "string", bool: "boolean", dict: "object", int: "integer", list: "array"}


def body_schema(fields: Sequence[Field]) -> dict[str, Any]:
    """The JSON Schema of a body that :func:`validate` accepts with ``fields``."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {spec.name: spec.json_schema() for spec in fields},
        "additionalProperties": False,
    }
    required = [spec.name for spec in fields if spec.required]
    if required:
        schema["required"] = required
    return schema


@dataclass(frozen=True, slots=True)
class Query:
    """One accepted query-string parameter: read with :meth:`read`, documented from here."""

    name: str
    type: type = str
    default: Any = None
    minimum: int = 0  # for integers
    maximum: int = 0
    allowed: Sequence[str] | None = None
    description: str = ""

    def read(self, params: Mapping[str, str]) -> Any:
        """The parameter's value (or its default), or the documented 400."""
        if self.type is int:
            return query_int(params, self.name, self.default, self.minimum, self.maximum)
        if self.allowed is not None:
            return query_choice(params, self.name, self.allowed, self.default)
        return params.get(self.name, self.default)

    def json_schema(self) -> dict[str, Any]:
        """The parameter's schema in the document."""
        if self.type is int:
            schema: dict[str, Any] = {
                "type": "integer", "minimum": self.minimum, "maximum": self.maximum,
            }  # fmt: skip
        else:
            schema = {"type": "string"}
            if self.allowed is not None:
                schema["enum"] = list(self.allowed)
        if self.default is not None:
            schema["default"] = self.default
        return schema


def _type_ok(value: Any, expected: type) -> bool:
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def check_field(spec: Field, value: Any, path: str | None = None) -> None:
    """Raise the 400 for ``value`` if it breaks ``spec``."""
    name = path or spec.name
    if not _type_ok(value, spec.type):
        raise InvalidParameterError(
            name,
            "invalid_type",
            f"{name} must be {_TYPE_NAMES.get(spec.type, spec.type.__name__)}.",
        )
    if isinstance(value, int) and not isinstance(value, bool):
        low = spec.minimum if spec.minimum is not None else value
        high = spec.maximum if spec.maximum is not None else value
        if not low <= value <= high:
            raise InvalidParameterError(
                name,
                "out_of_range",
                f"{name} must be between {spec.minimum} and {spec.maximum}.",
                minimum=spec.minimum,
                maximum=spec.maximum,
            )
    if isinstance(value, str):
        if spec.not_blank and not value.strip():
            raise InvalidParameterError(name, "empty", f"{name} must not be empty.")
        if spec.max_length is not None and len(value) > spec.max_length:
            raise InvalidParameterError(
                name,
                "too_long",
                f"{name} must be at most {spec.max_length} characters.",
                max_length=spec.max_length,
            )
        if spec.allowed is not None and value not in spec.allowed:
            raise InvalidParameterError(
                name,
                "not_allowed",
                f"{name} must be one of: {', '.join(spec.allowed)}.",
                allowed=list(spec.allowed),
            )


def validate(body: Mapping[str, Any], fields: Sequence[Field]) -> dict[str, Any]:
    """The body's known fields, checked; absent and null optional fields are left out."""
    for spec in fields:
        if spec.required and body.get(spec.name) is None:
            raise MissingParameterError(spec.name)
    known = {spec.name for spec in fields}
    for name in body:
        if name not in known:
            raise InvalidParameterError(
                name,
                "unknown_field",
                f"{name} is not a recognised field.",
            )
    clean: dict[str, Any] = {}
    for spec in fields:
        value = body.get(spec.name)
        if value is None:
            continue
        check_field(spec, value)
        clean[spec.name] = value
    return clean


METADATA_SCHEMA: Mapping[str, Any] = {
    "description": "Up to 16 string keys (1..40 characters) with string values (<= 500).",
    "maxProperties": 16,
    "propertyNames": {"minLength": 1, "maxLength": 40},
    "additionalProperties": {"type": "string", "maxLength": 500},
}


def validate_metadata(value: dict[str, Any]) -> dict[str, str]:
    """Up to 16 string keys of at most 40 characters, with string values of at most 500."""
    if len(value) > 16:
        raise InvalidParameterError(
            "metadata", "too_long", "metadata holds at most 16 keys.", max_length=16
        )
    for key, item in value.items():
        if len(key) == 0:
            raise InvalidParameterError("metadata", "empty", "metadata keys must not be empty.")
        if len(key) > 40:
            raise InvalidParameterError(
                f"metadata.{key[:40]}",
                "too_long",
                "metadata keys are at most 40 characters.",
                max_length=40,
            )
        check_field(Field(key, str, max_length=500), item, path=f"metadata.{key}")
    return dict(value)


def query_int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]."""
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameterError(name, "invalid_type", f"{name} must be an integer.") from None
    if not low <= value <= high:
        raise InvalidParameterError(
            name,
            "out_of_range",
            f"{name} must be between {low} and {high}.",
            minimum=low,
            maximum=high,
        )
    return value


def query_choice(
    params: Mapping[str, str], name: str, allowed: Sequence[str], default: str | None = None
) -> str | None:
    """A query parameter restricted to ``allowed``."""
    raw = params.get(name)
    if raw is None:
        return default
    check_field(Field(name, str, allowed=allowed), raw)
    return raw


# BCP 47 as clients send it: a primary language subtag, then optional subtags (de-DE,
# zh-Hant-TW, es-419); checked for shape, not against the registry.
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")


def check_language(value: str, field: str = "language") -> str:
    """A BCP 47 language tag, or 400 ``invalid_parameter``."""
    if not _LANGUAGE_TAG.fullmatch(value):
        raise InvalidParameterError(
            field,
            "invalid_type",
            f"{field} must be a BCP 47 language tag such as 'en' or 'de-DE'.",
        )
    return value


LIMIT = Query("limit", int, 20, 1, 100, description="How many items a page holds.")
STARTING_AFTER = Query(
    "starting_after", description="The id of the last item of the previous page (its cursor)."
)
