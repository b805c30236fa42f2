"""Keeps credentials that travel in URLs out of the server's logs.

Browsers send a client token as ``?token=`` on the WebSocket, and audio URLs carry their
signature as ``?sig=``; uvicorn logs request paths with their query strings. Both are
credentials for as long as they are valid, so they are masked before any line is written.
"""

from __future__ import annotations

import logging
import re

_SECRET_PARAMETER = re.compile(r"((?:^|[?&])(?:token|sig)=)[^&\s\"]+")
LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    """``text`` with the values of ``token`` and ``sig`` query parameters masked."""
    return _SECRET_PARAMETER.sub(r"\1[redacted]", text)


class RedactingFilter(logging.Filter):
    """Masks URL credentials in a record's message arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install() -> None:
    """Add the filter to uvicorn's loggers (once; safe to call again)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
