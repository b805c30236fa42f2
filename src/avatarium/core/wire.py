"""The exact JSON bytes the API sends, so stored replies replay byte for byte.

orjson encodes a reply with its viseme timings several times faster than the standard
library, and this encoding runs on every response.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


def wire_bytes(body: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return orjson.dumps(body)


def wire_json(body: Any) -> str:
    """The same encoding, as text (for storage)."""
    return orjson.dumps(body).decode("utf-8")


class WireJSONResponse(JSONResponse):
    """A JSON response encoded with :func:`wire_bytes`."""

    def render(self, content: Any) -> bytes:
        return wire_bytes(content)
