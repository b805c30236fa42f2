"""``GET /v1/analytics/overview`` and the transcript export behind
``GET /v1/conversations?format=csv|jsonl`` (SPEC section 11)."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime, timedelta

import orjson
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from avatarium.analytics.service import DayRange, ExportRow
from avatarium.api.endpoint import Call, endpoint
from avatarium.api.operation import Doc
from avatarium.api.validation import Query
from avatarium.core.clock import rfc3339
from avatarium.core.errors import InvalidParameterError
from avatarium.core.wire import WireJSONResponse as JSONResponse

PERIODS = {"7d": 7, "30d": 30, "90d": 90}
MAX_DAYS = 366
FORMATS = ("csv", "jsonl")
EXPORT_FIELDS = (
    "conversation_id", "avatar_id", "message_id", "role", "content", "created_at",
    "ai_tokens", "tts_characters", "stt_seconds", "escalated",
)  # fmt: skip
MOMENT = "A date (2025-01-15, midnight UTC) or an RFC 3339 time with a zone."
PERIOD = Query("period", allowed=list(PERIODS), description="The last 7, 30 or 90 days.")
START = Query("start", description=f"{MOMENT} Inclusive.")
END = Query("end", description=f"{MOMENT} Exclusive.")
FORMAT = Query("format", allowed=FORMATS, description="Export the transcripts in this format.")
EXPORT_QUERY = [FORMAT, START, END]


def parse_moment(params: Mapping[str, str], name: str) -> datetime | None:
    """An RFC 3339 timestamp or a date (midnight UTC), or 400 naming the field."""
    raw = params.get(name)
    if raw is None:
        return None
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), datetime.min.time(), tzinfo=UTC)
        moment = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidParameterError(
            name, "invalid_type",
            f"{name} must be a date (2025-01-15) or an RFC 3339 time with a zone "
            "(2025-01-15T10:00:00Z).",
        )  # fmt: skip
    return moment.astimezone(UTC)


def _day_ceil(moment: datetime) -> date:
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.date() if moment == midnight else moment.date() + timedelta(days=1)


def parse_days(params: Mapping[str, str], today: date) -> DayRange:
    """``period`` (7d, 30d, 90d; default 30d, today included) or ``start``/``end``, as
    whole UTC days: a time of day widens the range to the days it touches."""
    period = PERIOD.read(params)
    start, end = parse_moment(params, START.name), parse_moment(params, END.name)
    if period is not None and (start is not None or end is not None):
        raise InvalidParameterError(
            "period", "not_allowed", "Give either period or start/end, not both."
        )
    if start is None and end is None:
        last = today + timedelta(days=1)
        return DayRange(last - timedelta(days=PERIODS[period or "30d"]), last)
    last = _day_ceil(end) if end is not None else today + timedelta(days=1)
    first = start.date() if start is not None else last - timedelta(days=30)
    if first >= last:
        raise InvalidParameterError("end", "out_of_range", "end must be after start.")
    if (last - first).days > MAX_DAYS:
        raise InvalidParameterError(
            "start", "out_of_range", f"A range covers at most {MAX_DAYS} days.",
            maximum=MAX_DAYS,
        )  # fmt: skip
    return DayRange(first, last)


@endpoint(
    Doc(
        "Conversations, messages, durations and escalations over a period, by day",
        query=[PERIOD, START, END],
        response="AnalyticsOverview",
    )
)
async def overview(call: Call) -> Response:
    params = call.request.query_params
    for name in params:
        if name not in ("period", "start", "end"):
            raise InvalidParameterError(name, "unknown_field", f"{name} is not a parameter here.")
    days = parse_days(params, call.state.clock.now().date())
    return JSONResponse(await call.state.analytics.overview(call.caller, days))


def _csv_lines(rows: list[ExportRow]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow(
            [row.conversation_id, row.avatar_id, row.message_id, row.role, row.content,
             rfc3339(row.created_at), row.ai_tokens, row.tts_characters, row.stt_seconds,
             "true" if row.escalated else "false"]
        )  # fmt: skip
    return out.getvalue().encode()


def _json_lines(rows: list[ExportRow]) -> bytes:
    return b"".join(
        orjson.dumps(
            {"conversation_id": row.conversation_id, "avatar_id": row.avatar_id,
             "message_id": row.message_id, "role": row.role, "content": row.content,
             "created_at": rfc3339(row.created_at), "ai_tokens": row.ai_tokens,
             "tts_characters": row.tts_characters, "stt_seconds": row.stt_seconds,
             "escalated": row.escalated}
        ) + b"\n"
        for row in rows
    )  # fmt: skip


async def export_response(call: Call) -> Response:
    """The transcript export: one CSV row or JSON line per message, streamed."""
    params = call.request.query_params
    for name in params:
        if name not in ("format", "start", "end", "avatar_id"):
            raise InvalidParameterError(
                name, "unknown_field", f"{name} does not apply to an export (format=...)."
            )
    fmt = FORMAT.read(params)
    start, end = parse_moment(params, START.name), parse_moment(params, END.name)
    if start is not None and end is not None and start >= end:
        raise InvalidParameterError("end", "out_of_range", "end must be after start.")
    batches = call.state.analytics.export(
        call.caller, start=start, end=end, avatar_id=params.get("avatar_id")
    )
    encode = _csv_lines if fmt == "csv" else _json_lines

    async def body() -> AsyncIterator[bytes]:
        if fmt == "csv":
            yield (",".join(EXPORT_FIELDS) + "\r\n").encode()
        async for rows in batches:
            yield encode(rows)
            # SQLite reads may run inline: let other requests have the loop between pages.
            await asyncio.sleep(0)

    stamp = call.state.clock.now().strftime("%Y%m%d-%H%M%S")
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    return StreamingResponse(
        body(),
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="conversations-{stamp}.{fmt}"',
            "Cache-Control": "no-store",
        },
        background=BackgroundTask(call.hold_admission()),
    )


routes = [Route("/v1/analytics/overview", overview, methods=["GET"])]
