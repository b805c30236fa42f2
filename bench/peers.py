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


async def _interleaved(paths: list[tuple[str, Call]], count: int) -> list[list[float]]:
    """Sequential requests, one path after another in turn, so that every path meets the
    same moment-to-moment conditions of a shared machine (one client per path)."""
    clients = [httpx.AsyncClient(base_url=base, timeout=60) for base, _ in paths]
    try:
        for _ in range(20):  # warm-up
            for client, (_, call) in zip(clients, paths, strict=True):
                await call(client)
        times: list[list[float]] = [[] for _ in paths]
        for _ in range(count):
            for index, (client, (_, call)) in enumerate(zip(clients, paths, strict=True)):
                started = time.perf_counter()
                await call(client)
                times[index].append((time.perf_counter() - started) * 1000)
        return times
    finally:
        for client in clients:
            await client.aclose()


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


def _row(name: str, sequential: list[float], rate: float) -> None:
    p50, p99 = pct(sequential, 50), pct(sequential, 99)
    print(f"  {name:<34} {p50:7.2f} {p99:7.2f} ms  {rate:8.0f} req/s")


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
        # LiteLLM refuses to start without a master key; with one it authenticates each
        # request, as we do.
        master = "sk-bench-master-" + os.urandom(16).hex()
        peer_env = {
            **os.environ,
            "LITELLM_LOG": "ERROR",
            "LITELLM_TELEMETRY": "False",
            "LITELLM_MASTER_KEY": master,
        }
        litellm_port, our_port = 18790, 18791
        litellm = subprocess.Popen(
            [args.litellm, "--config", str(config), "--port", str(litellm_port), "--num_workers=1"],
            env=peer_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        env = instant_env(str(Path(data_dir) / "ours"), fake.url)
        key = unlimited_key(env, "peers")
        server = serve(env, our_port)
        try:
            _wait_for(f"http://127.0.0.1:{litellm_port}/health/liveliness", litellm)
            ours = f"http://127.0.0.1:{our_port}"
            auth = {"Authorization": f"Bearer {key}"}
            created = httpx.post(
                f"{ours}/v1/conversations",
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

            paths: list[tuple[str, Call]] = [
                (fake.url, _upstream_call("/v1/chat/completions", {"Authorization": "Bearer x"})),
                (
                    f"http://127.0.0.1:{litellm_port}",
                    _upstream_call("/chat/completions", {"Authorization": f"Bearer {master}"}),
                ),
                (ours, send),
            ]
            names = ["upstream, direct", "LiteLLM proxy", "Avatarium send (tts false)"]
            # The upstream and ours take turns; LiteLLM runs on its own, because it keeps
            # working for a while after each answer (it would take CPU from the others).
            direct, mine = asyncio.run(_interleaved([paths[0], paths[2]], args.requests))
            (proxied,) = asyncio.run(_interleaved([paths[1]], args.requests))
            sequential = [direct, proxied, mine]
            # Throughput one path at a time: the others sit idle meanwhile.
            rates = [
                asyncio.run(_closed_loop(base, call, args.clients, args.seconds))
                for base, call in paths
            ]
        finally:
            litellm.terminate()
            litellm.wait(timeout=30)
            server.terminate()
            server.wait(timeout=20)
    for name, times, rate in zip(names, sequential, rates, strict=True):
        _row(name, times, rate)
    up, ours_p50 = pct(sequential[0], 50), pct(sequential[2], 50)
    ratio = rates[2] / rates[1]
    print(
        f"  ours over the upstream, sequential p50: {ours_p50 - up:+.2f} ms (target <= +2.5); "
        f"throughput vs LiteLLM: {ratio:.2f}x (target >= 2.5x)"
    )


if __name__ == "__main__":
    main()
