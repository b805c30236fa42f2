"""Side by side, in one run on this machine: the same instant OpenAI-compatible upstream
called directly, through the LiteLLM proxy, and through our send endpoint.

``make bench-peers`` installs LiteLLM into its own environment (``.venv-peers``; never a
project dependency) and runs this with ``--litellm PATH``. Each path gets one worker, the
same streamed chat completion upstream, and the same load: sequential requests (p50/p99 of
the time the client waits) and a 10-client closed loop (requests per second).
Ours is a non-streamed send with ``"tts": false``: authentication, limits, quota, the stored
turn and the upstream call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import instant_env, pct, serve, unlimited_key  # noqa: E402
from instant_fake import InstantFake  # noqa: E402

CHAT = {
    "model": "bench",
    "messages": [{"role": "user", "content": "Hello there"}],
    "stream": True,
}
Call = Callable[[httpx.AsyncClient], Awaitable[None]]


async def _sequential(base: str, call: Call, count: int) -> list[float]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for _ in range(20):
            await call(client)  # warm-up
        times = []
        for _ in range(count):
            started = time.perf_counter()
            await call(client)
            times.append((time.perf_counter() - started) * 1000)
    return times


async def _closed_loop(base: str, call: Call, clients: int, seconds: float) -> float:
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        for _ in range(clients):
            await call(client)
        done = [0]
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await call(client)
                done[0] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return done[0] / (time.perf_counter() - started)


def _upstream_call(path: str, headers: dict[str, str]) -> Call:
    async def call(client: httpx.AsyncClient) -> None:
        async with client.stream("POST", path, json=CHAT, headers=headers) as response:
            response.raise_for_status()
            async for _ in response.aiter_bytes():
                pass

    return call


def _wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited before answering")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {seconds:.0f} s")


def _measure(
    name: str, base: str, call: Call, args: argparse.Namespace
) -> tuple[list[float], float]:
    """Sequential times and closed-loop throughput of one path, printed as a row."""
    sequential = asyncio.run(_sequential(base, call, args.requests))
    rate = asyncio.run(_closed_loop(base, call, args.clients, args.seconds))
    p50, p99 = pct(sequential, 50), pct(sequential, 99)
    print(f"  {name:<34} {p50:7.2f} {p99:7.2f} ms  {rate:8.0f} req/s")
    return sequential, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--litellm", required=True, help="the LiteLLM proxy's executable")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=10)
    args = parser.parse_args()
    print(
        f"Peers on {os.cpu_count()} cores: one worker each, {args.requests} sequential requests, "
        f"{args.clients}-client closed loop for {args.seconds:.0f} s"
    )
    print(f"  {'path':<34} {'p50':>7} {'p99':>7}     {'throughput':>12}")
    with InstantFake() as fake, tempfile.TemporaryDirectory() as data_dir:
        results: dict[str, tuple[list[float], float]] = {}
        direct = _upstream_call("/v1/chat/completions", {"Authorization": "Bearer sk-bench"})
        results["upstream"] = _measure("upstream, direct", fake.url, direct, args)

        config = Path(data_dir) / "litellm.yaml"
        config.write_text(
            "model_list:\n"
            "  - model_name: bench\n"
            "    litellm_params:\n"
            "      model: openai/bench\n"
            f"      api_base: {fake.url}/v1\n"
            "      api_key: sk-bench\n"
            "litellm_settings:\n"
            "  telemetry: false\n"
        )
        port = 18790
        # LiteLLM refuses to start without a master key; with one it authenticates each
        # request, as we do.
        master = "sk-bench-master-" + os.urandom(16).hex()
        peer_env = {
            **os.environ,
            "LITELLM_LOG": "ERROR",
            "LITELLM_TELEMETRY": "False",
            "LITELLM_MASTER_KEY": master,
        }
        litellm = subprocess.Popen(
            [args.litellm, "--config", str(config), "--port", str(port), "--num_workers", "1"],
            env=peer_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for(f"http://127.0.0.1:{port}/health/liveliness", litellm)
            through = _upstream_call("/chat/completions", {"Authorization": f"Bearer {master}"})
            base = f"http://127.0.0.1:{port}"
            results["litellm"] = _measure("LiteLLM proxy", base, through, args)
        finally:
            litellm.terminate()
            litellm.wait(timeout=30)

        env = instant_env(str(Path(data_dir) / "ours"), fake.url)
        key = unlimited_key(env, "peers")
        port = 18791
        server = serve(env, port)
        try:
            base = f"http://127.0.0.1:{port}"
            auth = {"Authorization": f"Bearer {key}"}
            created = httpx.post(
                f"{base}/v1/conversations",
                headers=auth,
                json={"avatar_id": "aria-001", "ai_provider": "openai", "tts_provider": "browser"},
            )
            created.raise_for_status()
            path = f"/v1/conversations/{created.json()['id']}/messages"

            async def send(client: httpx.AsyncClient) -> None:
                response = await client.post(
                    path, json={"content": "Hello there", "tts": False}, headers=auth
                )
                response.raise_for_status()

            results["ours"] = _measure("Avatarium send (tts false)", base, send, args)
        finally:
            server.terminate()
            server.wait(timeout=20)
    up = pct(results["upstream"][0], 50)
    ours = pct(results["ours"][0], 50)
    ratio = results["ours"][1] / results["litellm"][1]
    print(
        f"  ours over the upstream, sequential p50: {ours - up:+.2f} ms (target <= +2.5); "
        f"throughput vs LiteLLM: {ratio:.2f}x (target >= 2.5x)"
    )


if __name__ == "__main__":
    main()
