"""A Server-Sent Events decoder that follows the WHATWG HTML "event stream" parsing rules
(section 9.2.6), so tests check the stream as a browser's EventSource would read it rather
than comparing strings.

Lines end in CRLF, LF or CR; a leading BOM is dropped; ``:`` starts a comment; a field's
value loses one leading space; ``data`` lines join with LF; an empty line dispatches the
event (none if its data buffer is empty); ``id`` values containing NUL are ignored; the last
event id persists across events; an unfinished event at the end of the stream is dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class SSEEvent:
    type: str
    data: str
    last_event_id: str

    def json(self) -> Any:
        return json.loads(self.data)


class SSEDecoder:
    def __init__(self) -> None:
        self._pending = b""
        self._first = True
        self._data: list[str] = []
        self._type = ""
        self.last_event_id = ""
        self.comments: list[str] = []
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode bytes; return the events they completed."""
        self._pending += chunk
        events: list[SSEEvent] = []
        while True:
            line = self._next_line()
            if line is None:
                return events
            text = line.decode("utf-8", errors="replace")
            if self._first:
                text = text.removeprefix("\ufeff")
                self._first = False
            event = self._line(text)
            if event is not None:
                events.append(event)

    def _next_line(self) -> bytes | None:
        for i, byte in enumerate(self._pending):
            if byte == 0x0A:  # LF
                line, self._pending = self._pending[:i], self._pending[i + 1 :]
                return line
            if byte == 0x0D:  # CR, maybe CRLF; a CR at the end must wait for the next byte
                if i + 1 == len(self._pending):
                    return None
                skip = 2 if self._pending[i + 1] == 0x0A else 1
                line, self._pending = self._pending[:i], self._pending[i + skip :]
                return line
        return None

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments.append(line[1:])
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, kind = self._data, self._type
        self._data, self._type = [], ""
        if not data:
            return None
        return SSEEvent(
            type=kind or "message", data="\n".join(data), last_event_id=self.last_event_id
        )
