"""``multipart/form-data`` bodies (audio uploads): parsed with Starlette's parser over
python-multipart, from the body the pipeline already read and size-checked."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from avatarium.api.body import MAX_BODY_BYTES, reject_unstorable, too_large
from avatarium.core.errors import InvalidParameterError, InvalidRequestError


@dataclass(frozen=True, slots=True)
class Upload:
    """One file part, read whole."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Form:
    """A parsed form: text fields and file parts."""

    fields: dict[str, str]
    files: dict[str, Upload]


async def parse_form(raw: bytes, headers: Headers, *, file_limit: int) -> Form:
    """The form, or 400 ``invalid_request`` (reason ``invalid_multipart``) when it is not
    one; a file over ``file_limit`` bytes is 413 ``request_too_large``; a field sent twice
    or holding text we cannot store is 400 ``invalid_parameter``."""

    async def body() -> AsyncGenerator[bytes, None]:
        yield raw

    parser = MultiPartParser(
        headers, body(), max_files=4, max_fields=32, max_part_size=MAX_BODY_BYTES
    )
    try:
        form = await parser.parse()
    except (MultiPartException, UnicodeDecodeError, ValueError, KeyError) as exc:
        # The parser raises more than its own exception on hostile input (undecodable
        # field text, a broken boundary): all of it is the client's malformed body.
        message = exc.message if isinstance(exc, MultiPartException) else "malformed parts"
        raise InvalidRequestError(
            f"The multipart body could not be parsed: {message}",
            details={"reason": "invalid_multipart"},
        ) from None
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    try:
        for name, value in form.multi_items():
            reject_unstorable(name, "body")
            if name in fields or name in files:
                raise InvalidParameterError(name, "not_allowed", f"{name} was sent twice.")
            if isinstance(value, UploadFile):
                data = await value.read()
                if len(data) > file_limit:
                    raise too_large(file_limit, f"The {name} file")
                files[name] = Upload(
                    value.filename or name, value.content_type or "application/octet-stream", data
                )
            else:
                reject_unstorable(value, name)
                fields[name] = value
    finally:
        await form.close()
    return Form(fields, files)


def check_form(form: Form, fields: set[str], files: set[str]) -> None:
    """400 ``unknown_field`` for a part this endpoint does not take."""
    for name in [*form.fields, *form.files]:
        if name not in fields | files:
            raise InvalidParameterError(name, "unknown_field", f"{name} is not a recognised field.")
    for name in form.fields:
        if name in files:
            raise InvalidParameterError(name, "invalid_type", f"{name} must be a file part.")


def form_bool(form: Form, name: str) -> bool | None:
    """A boolean form field (``true`` / ``false``), absent as ``None``."""
    value = form.fields.get(name)
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise InvalidParameterError(name, "invalid_type", f"{name} must be true or false.")
