"""End to end: the real server process, started the way `make run` starts it.

The first start prints a test key and a curl example; running that example verbatim must
return a spoken reply whose MP3 downloads and lasts as long as the reply says.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from avatarium.speech.mp3 import mp3_duration_ms
from tests.server_process import Server, free_port

pytestmark = pytest.mark.e2e


def test_first_start_prints_a_key_and_a_working_example(
    tmp_path: Path, server_factory: list[Server]
) -> None:
    port = free_port()
    server = Server(tmp_path, port)
    server_factory.append(server)
    server.wait_ready()
    output = server.output
    assert "av_test_" in output, output
    example = output[output.index("CONV=$(") :].split("\n\n")[0]
    assert "Bearer av_test_" in example
    result = subprocess.run(["bash", "-c", example], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["role"] == "assistant" and reply["content"]
    audio = httpx.get(reply["audio_url"], timeout=10)  # no key: signed URLs are public
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/mpeg"
    duration = mp3_duration_ms(audio.content)
    assert abs(duration - reply["audio"]["duration_ms"]) <= 0.1 * reply["audio"]["duration_ms"]
    assert reply["audio_url"].startswith(f"http://127.0.0.1:{port}/v1/audio/aud_")

    # A restart finds the key and prints none.
    server.stop()
    again = Server(tmp_path, free_port())
    server_factory.append(again)
    again.wait_ready()
    assert "av_test_" not in again.output


def test_streaming_over_real_connections(tmp_path: Path, server_factory: list[Server]) -> None:
    """SSE and the WebSocket through uvicorn itself: real sockets, real hang-ups."""
    import asyncio

    import websockets

    from tests.sse import SSEDecoder

    port = free_port()
    server = Server(tmp_path, port)
    server_factory.append(server)
    server.wait_ready()
    key = server.first_key
    client = httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {key}"})
    conversation = client.post("/v1/conversations", json={"avatar_id": "aria-001"}).json()["id"]
    url = f"/v1/conversations/{conversation}/messages"
    body = {"content": "Tell me two facts about the sea.", "stream": True}

    decoder = SSEDecoder()
    events = []
    with client.stream("POST", url, json=body, timeout=60) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            events += decoder.feed(chunk)
    assert events[-1].type == "done" and events[0].type == "message"
    done = events[-1].json()
    for event in events:
        if event.type == "audio":
            audio = httpx.get(event.json()["url"], timeout=10)
            assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"

    # Hanging up mid-reply stores nothing.
    with client.stream("POST", url, json=body, timeout=60) as response:
        for chunk in response.iter_bytes():
            if b"event: message" in chunk:
                break
    time.sleep(1.0)
    stored = client.get(url).json()["data"]
    assert [m["id"] for m in stored if m["role"] == "assistant"] == [done["id"]]

    token = client.post(f"/v1/conversations/{conversation}/client_tokens").json()["token"]

    async def talk() -> list[dict[str, object]]:
        ws_url = f"ws://127.0.0.1:{port}/v1/conversations/{conversation}/ws?token={token}"
        async with websockets.connect(ws_url) as ws:
            frames = [json.loads(await ws.recv())]
            await ws.send(json.dumps({"type": "message", "content": "And one more?"}))
            while frames[-1]["type"] not in ("done", "error"):
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
            return frames

    frames = asyncio.run(talk())
    assert frames[0] == {"type": "ready", "conversation_id": conversation}
    assert frames[-1]["type"] == "done", frames[-1]
    assert {"message.delta", "audio"} <= {str(f["type"]) for f in frames}
    assert len(client.get(url).json()["data"]) == 4

    async def refused() -> int | None:
        ws_url = f"ws://127.0.0.1:{port}/v1/conversations/{conversation}/ws"
        async with websockets.connect(ws_url) as ws:
            await ws.recv()  # the error frame
            try:
                await ws.recv()
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
        return None

    assert asyncio.run(refused()) == 4401

    # Credentials that travel in URLs never reach the log.
    time.sleep(0.5)
    signatures = [e.json()["url"].split("sig=")[1] for e in events if e.type == "audio"]
    assert token not in server.output and "token=[redacted]" in server.output
    assert not any(sig in server.output for sig in signatures)
    assert "sig=[redacted]" in server.output
