"""The reply's events as the wire names them: one mapping for SSE and the WebSocket."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from avatarium.core.errors import InternalError
from avatarium.core.events import (
    AudioChunk,
    Done,
    ErrorEvent,
    Interrupted,
    ReplyEvent,
    TextDelta,
)

log = logging.getLogger(__name__)


def reply_frame(event: ReplyEvent, request_id: str | None) -> tuple[str, dict[str, Any]] | None:
    """``(event name, data)`` for an event the client sees; ``None`` for internal ones."""
    if isinstance(event, TextDelta):
        return "message", {"delta": event.text}
    if isinstance(event, AudioChunk):
        return "audio", {
            "url": event.url,
            "index": event.index,
            "text": event.text,
            "duration_ms": event.duration_ms,
            "visemes": event.visemes,
            "words": event.words,
        }
    if isinstance(event, Done):
        return "done", event.message  # the stored message: id, content, audio_url, usage, ...
    if isinstance(event, Interrupted):
        return "interrupted", {"message_id": event.message["id"], "message": event.message}
    if isinstance(event, ErrorEvent):
        return "error", event.error.body(request_id)
    return None  # Usage: bookkeeping only


async def reply_frames(
    events: AsyncGenerator[ReplyEvent, None], request_id: str | None
) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
    """The frames of a reply, ending in ``done`` or ``error`` even when a bug interrupts it
    (the reply has cleaned up after itself by then)."""
    try:
        async with aclosing(events) as reply:
            async for event in reply:
                frame = reply_frame(event, request_id)
                if frame is not None:
                    yield frame
    except Exception:
        log.exception("reply failed in request %s", request_id)
        error = InternalError("An internal error occurred. Quote the request id when reporting it.")
        yield "error", error.body(request_id)
