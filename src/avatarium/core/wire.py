"""The exact JSON bytes the API sends, so stored replies replay byte for byte."""

from __future__ import annotations

import json
from typing import Any


def wire_json(body: Any) -> str:
    """Compact UTF-8 JSON, the same encoding Starlette's JSONResponse uses."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
