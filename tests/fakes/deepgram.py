"""Deepgram's streaming ``/v1/listen`` WebSocket, as documented.

The handshake carries ``Authorization: Token <key>`` and the audio's description in the
query; a bad key is refused with HTTP 401 before the upgrade. Binary messages are audio;
``{"type": "CloseStream"}`` asks for the final results, then one ``Metadata`` message, then
the close. A fake cannot hear: the transcript is the next one a test queued in ``HEARD``
(or a fixed sentence), its words spread evenly over the audio it received, whose length it
checks against the declared encoding (whole 16-bit samples).
"""

from __future__ import annotations

import json
import uuid
from collections import deque

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from tests.fakes.server import FakeState, Recorded

API_KEY = "deepgram-test"
DEFAULT_TEXT = "Hello from the fake Deepgram."
HEARD: deque[str] = deque()


def build(state: FakeState) -> Starlette:
    async def listen(websocket: WebSocket) -> None:
        entry = Recorded(
            "GET", websocket.url.path, dict(websocket.query_params),
            {k.lower(): v for k, v in websocket.headers.items()}, None,
        )  # fmt: skip
        state.requests.append(entry)
        fault = state.faults.popleft() if state.faults else None
        status = {"401": 401, "429": 429, "500": 500, "503": 503}.get(fault or "")
        if entry.headers.get("authorization") != f"Token {API_KEY}":
            status = 401
        if status is not None:
            await websocket.send_denial_response(
                JSONResponse({"err_code": "REFUSED", "err_msg": f"scripted {status}"}, status)
            )
            return
        if entry.query.get("encoding") != "linear16" or not entry.query.get("sample_rate"):
            await websocket.close(code=1008, reason="DATA-0000")
            return
        await websocket.accept()
        audio = bytearray()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                audio += message["bytes"]
            elif json.loads(message.get("text") or "{}").get("type") == "CloseStream":
                break
        entry.body = {"audio_bytes": len(audio)}
        rate = int(entry.query["sample_rate"])
        duration = len(audio) / (2 * rate)
        if fault == "malformed":
            await websocket.send_text("{not json")
            await websocket.close()
            return
        text = HEARD.popleft() if HEARD else DEFAULT_TEXT
        words = text.split()
        step = duration / max(1, len(words))
        result = {
            "type": "Results", "channel_index": [0, 1], "duration": duration, "start": 0.0,
            "is_final": True, "speech_final": True, "from_finalize": False,
            "channel": {"alternatives": [{
                "transcript": text, "confidence": 0.98,
                "words": [{"word": w.strip(".,?!").lower(), "start": round(i * step, 3),
                           "end": round((i + 1) * step, 3), "confidence": 0.98,
                           "punctuated_word": w} for i, w in enumerate(words)],
            }]},
            "metadata": {"request_id": str(uuid.uuid4()), "model_info": {"name": "fake"}},
        }  # fmt: skip
        await websocket.send_text(json.dumps(result))
        await websocket.send_text(json.dumps({
            "type": "Metadata", "transaction_key": "deprecated", "request_id": str(uuid.uuid4()),
            "sha256": "0" * 64, "created": "2026-01-01T00:00:00.000Z", "duration": duration,
            "channels": 1,
        }))  # fmt: skip
        await websocket.close()

    return Starlette(routes=[WebSocketRoute("/v1/listen", listen)])
