"""The terminal chat, driven through a pseudo-terminal like a person at a keyboard."""

from __future__ import annotations

import os
import pty
import re
import secrets
import select
import subprocess
import sys
import time
from pathlib import Path

from conftest import Server

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")


class Terminal:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self._master, slave = pty.openpty()
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
        )
        os.close(slave)
        self.screen = ""

    def expect(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """Wait until ``pattern`` appears in what was printed since the last match."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.screen)
            if match:
                self.screen = self.screen[match.end() :]
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {pattern!r}; the screen shows:\n{self.screen}")
            ready, _, _ = select.select([self._master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(self._master, 65536)
                except OSError:
                    data = b""
                self.screen += ANSI.sub("", data.decode("utf-8", "replace"))

    def type(self, line: str) -> None:
        os.write(self._master, (line + "\n").encode())

    def close(self) -> int:
        code = self.process.wait(timeout=30)
        os.close(self._master)
        return code


def test_chat_in_a_terminal(server: Server, tmp_path: Path) -> None:
    key = server.key(f"chat-{secrets.token_hex(4)}")
    saved = tmp_path / "speech"
    env = {**os.environ, "AVATARIUM_API_KEY": key, "PATH": os.environ.get("PATH", "")}
    terminal = Terminal(
        [sys.executable, "-m", "avatarium_client", "--url", server.url, "--no-play",
         "--save-audio", str(saved)],
        env,
    )  # fmt: skip
    try:
        terminal.expect(r"Talking to aria-001")
        terminal.expect(r"you> ")
        terminal.type("Hello! Who are you?")
        terminal.expect(r"\[new conversation conv_\w+ with aria-001\]")
        reply = terminal.expect(r"aria-001> (.+)\n")
        assert reply.group(1).strip()
        terminal.expect(r"you> ")
        terminal.type("/history")
        terminal.expect(r"you> Hello! Who are you\?")
        terminal.expect(r"aria-001> " + re.escape(reply.group(1).strip()[:20]))
        terminal.type("/avatar nobody-here")
        error = terminal.expect(r"error: avatar_not_found: .+ \(request (req_\w+)\)")
        assert error.group(1)
        terminal.type("/quit")
        assert terminal.close() == 0
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()
    assert sorted(p.suffix for p in saved.iterdir()) and all(
        p.read_bytes()[:1] == b"\xff" for p in saved.iterdir()
    )
