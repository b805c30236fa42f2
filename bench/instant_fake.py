"""An "instant" vendor for benchmarks: a bare asyncio HTTP/1.1 server in its own process
that answers every POST with one canned, valid streamed reply (OpenAI or Anthropic shape).

The wire-protocol fakes in tests/fakes check requests and script faults; that costs CPU
which, on a 2-core machine, would be taken from the server being measured.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import socket

WORDS = [
    "Hello!",
    "I",
    "am",
    "a",
    "very",
    "fast",
    "fake",
    "model,",
    "and",
    "this",
    "is",
    "my",
    "whole",
    "reply.",
]


def _openai_body() -> bytes:
    base = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "bench",
    }
    events = [
        json.dumps(
            {
                **base,
                "choices": [{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}],
            }
        )
        for w in WORDS
    ]
    events.append(
        json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    )
    events.append(
        json.dumps(
            {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": 20,
                    "completion_tokens": len(WORDS),
                    "total_tokens": 20 + len(WORDS),
                },
            }
        )
    )
    events.append("[DONE]")
    return "".join(f"data: {e}\n\n" for e in events).encode()


def _anthropic_body() -> bytes:
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_bench",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": "bench",
                    "usage": {"input_tokens": 20, "output_tokens": 1},
                },
            },
        )
    ]
    events += [
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": w + " "},
            },
        )
        for w in WORDS
    ]
    events += [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": len(WORDS)},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return "".join(f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in events).encode()


def _response(body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _serve(sock: socket.socket) -> None:
    replies = {
        b"/v1/chat/completions": _response(_openai_body()),
        b"/v1/messages": _response(_anthropic_body()),
    }

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                writer.write(
                    replies.get(path, b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, sock=sock)
    async with server:
        await server.serve_forever()


def _run(sock: socket.socket) -> None:
    asyncio.run(_serve(sock))


class InstantFake:
    """The fake in a child process; ``url`` serves both vendors' paths."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._process = multiprocessing.get_context("fork").Process(
            target=_run, args=(self._sock,), daemon=True
        )

    def __enter__(self) -> InstantFake:
        self._process.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._process.terminate()
        self._process.join(timeout=5)
        self._sock.close()
