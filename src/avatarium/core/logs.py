"""Logging: one line per event on stderr, as text or as JSON (``AVATARIUM_LOG_FORMAT``),
each with its time, level, logger and, while a request runs, its request id. The same
configuration is handed to uvicorn, so its own lines (access log included) look the same.
URL credentials are masked on every line (:mod:`avatarium.core.log_redaction`)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from avatarium.core.log_redaction import RedactingFilter
from avatarium.core.request_id import current_request_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class ContextFilter(RedactingFilter):
    """Adds ``request_id`` (``-`` outside a request) and masks URL credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return super().filter(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id when there is
    one, and the exception's text when one is attached."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "-")
        if request_id != "-":
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def log_config(level: str, fmt: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the server and for uvicorn."""
    formatter: dict[str, Any] = (
        {"()": "avatarium.core.logs.JsonFormatter"}
        if fmt == "json"
        else {"format": TEXT_FORMAT, "datefmt": "%Y-%m-%dT%H:%M:%S%z"}
    )
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "line",
        "filters": ["context"],
    }
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "avatarium.core.logs.ContextFilter"}},
        "formatters": {"line": formatter},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["stderr"], "level": level, "propagate": False},
            # Migrations say every step at INFO; an operator wants to hear about problems.
            "alembic": {"level": "DEBUG" if level == "DEBUG" else "WARNING"},
        },
        "root": {"handlers": ["stderr"], "level": level},
    }


def configure(level: str, fmt: str) -> None:
    """Apply :func:`log_config` in this process (commands other than ``serve``)."""
    import logging.config

    logging.config.dictConfig(log_config(level, fmt))
