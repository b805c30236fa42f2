"""What the sync and async clients share: request descriptions, response and error
parsing, the Server-Sent Events decoder, and stream events. No I/O happens here."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from avatarium_client.errors import (
    STATUS_OF_CODE,
    APIConnectionError,
    APITimeoutError,
    error_from_body,
)
from avatarium_client.models import AudioChunk, Cancelled, Done, Message, StreamEvent, TextDelta

T = TypeVar("T")
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
USER_AGENT = "avatarium-client-python/0.1.0"


@dataclass
class Call(Generic[T]):
    """One API call: what to send and how to read the answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    idempotent_key: bool = False  # sends carry an Idempotency-Key, the same on every retry
    binary: bool = False  # the answer is bytes (speech), handed to parse with its headers
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.idempotent_key:
            self.headers["Idempotency-Key"] = f"avc-{uuid.uuid4()}"
        if self.params:
            self.params = {k: v for k, v in self.params.items() if v is not None}


def body_without_nones(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def lower_headers(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def read_answer(status: int, headers: dict[str, str], content: bytes, call: Call[T]) -> T:
    """The parsed answer, or the typed error the server described."""
    if status >= 400:
        raise error_from_body(status, _json_or_none(content), headers)
    if call.binary:
        return call.parse((content, headers))
    return call.parse(json.loads(content))


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def transport_error(exc: Exception) -> APIConnectionError:
    """httpx's and websockets' failures as this library's connection errors."""
    import httpx

    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return APITimeoutError(f"the server did not answer in time: {exc!r}")
    return APIConnectionError(f"no complete answer from the server: {exc!r}")


class SSEDecoder:
    """Incremental ``text/event-stream`` decoder (the WHATWG parsing rules): yields
    ``(event, data)`` for each dispatched event; comments and ids are consumed."""

    def __init__(self) -> None:
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []

    def feed(self, text: str) -> list[tuple[str, str]]:
        self._buffer += text
        events: list[tuple[str, str]] = []
        while True:
            for index, char in enumerate(self._buffer):
                if char in "\r\n":
                    if char == "\r" and index + 1 == len(self._buffer):
                        return events  # maybe CRLF: wait for the next piece
                    skip = 2 if self._buffer[index : index + 2] == "\r\n" else 1
                    line, self._buffer = self._buffer[:index], self._buffer[index + skip :]
                    break
            else:
                return events
            if not line:
                if self._data:
                    events.append((self._event or "message", "\n".join(self._data)))
                self._event, self._data = "", []
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    self._event = value
                elif name == "data":
                    self._data.append(value)


def stream_event(kind: str, data: dict[str, Any]) -> StreamEvent | Cancelled | None:
    """A typed event from an SSE event or a WebSocket frame; raises the error of an
    ``error`` event; ``None`` for kinds this version does not know (newer servers)."""
    if kind in ("message", "message.delta"):
        return TextDelta(str(data["delta"]))
    if kind == "audio":
        return AudioChunk.from_json(data)
    if kind == "done":
        return Done(Message.from_json({k: v for k, v in data.items() if k != "type"}))
    if kind == "cancelled":
        return Cancelled()
    if kind == "error":
        error = data.get("error") or {}
        status = STATUS_OF_CODE.get(str(error.get("code")), 400)
        headers = {}
        if data.get("retry_after") is not None:
            headers["retry-after"] = str(data["retry_after"])
        raise error_from_body(status, {"error": error}, headers)
    return None


class StreamReader:
    """Typed events from the text of an event stream, up to ``done`` (an ``error`` event
    raises its typed error)."""

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self.done = False

    def feed(self, text: str) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for kind, data in self._decoder.feed(text):
            event = stream_event(kind, json.loads(data))
            if event is not None and not isinstance(event, Cancelled):
                events.append(event)
                if isinstance(event, Done):
                    self.done = True
                    break
        return events


def message_frame(content: str, tts: bool | None) -> str:
    """A WebSocket ``message`` frame."""
    frame: dict[str, Any] = {"type": "message", "content": content}
    if tts is not None:
        frame["tts"] = tts
    return json.dumps(frame)


def turn_event(text: str | bytes) -> tuple[StreamEvent | None, bool]:
    """A WebSocket frame of a turn as ``(event or None, whether the turn ended)``."""
    data = json.loads(text)
    event = stream_event(str(data.get("type")), data)
    if isinstance(event, Cancelled):
        return None, True
    return event, isinstance(event, Done)


ENDED_EARLY = "the stream ended before its done event"
