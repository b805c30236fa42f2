"""``avatarium chat``: talk to an avatar in the terminal.

The reply streams in as it is written; each sentence's speech is played as soon as it
arrives when a command-line MP3 player is installed (mpg123, ffplay, mpv or afplay), and/or
saved with ``--save-audio DIR``. Errors print as one line with the request id. Commands:
``/new`` (a fresh conversation), ``/avatar NAME`` (switch avatar), ``/history``, ``/quit``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TextIO

import httpx

from avatarium_client._core import DEFAULT_BASE_URL
from avatarium_client.client import Avatarium
from avatarium_client.errors import APIConnectionError, AvatariumError
from avatarium_client.models import AudioChunk, Done, TextDelta

PLAYERS = [
    ["mpg123", "-q"],
    ["ffplay", "-nodisp", "-autoexit", "-loglevel", "quiet"],
    ["mpv", "--no-video", "--really-quiet"],
    ["afplay"],
]
HELP = "Commands: /new, /avatar NAME, /history, /quit. Anything else is sent to the avatar."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The chat's options (shared with the server's ``avatarium chat``)."""
    parser.add_argument("--avatar", default="aria-001", help="avatar preset id")
    parser.add_argument(
        "--url",
        default=os.environ.get("AVATARIUM_BASE_URL", DEFAULT_BASE_URL),
        help="server base URL (default: AVATARIUM_BASE_URL or %(default)s)",
    )
    parser.add_argument("--key", help="API key (default: AVATARIUM_API_KEY)")
    parser.add_argument("--save-audio", metavar="DIR", help="save each speech chunk as MP3 here")
    parser.add_argument("--no-play", action="store_true", help="never play audio")


def find_player() -> list[str] | None:
    for command in PLAYERS:
        if shutil.which(command[0]):
            return command
    return None


class Speaker:
    """Plays or saves speech chunks in order, on a background thread, so the text keeps
    streaming while the avatar talks."""

    def __init__(self, client: Avatarium, player: list[str] | None, save_dir: Path | None) -> None:
        self._client = client
        self._player = player
        self._save_dir = save_dir
        self._queue: queue.Queue[tuple[str, AudioChunk] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    @property
    def active(self) -> bool:
        return self._player is not None or self._save_dir is not None

    def add(self, message_key: str, chunk: AudioChunk) -> None:
        if self.active:
            self._queue.put((message_key, chunk))

    def wait(self) -> None:
        self._queue.join()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._handle(*item)
            except (httpx.HTTPError, OSError) as exc:
                print(f"\n(audio skipped: {exc})", file=sys.stderr)
            finally:
                self._queue.task_done()

    def _handle(self, message_key: str, chunk: AudioChunk) -> None:
        data = httpx.get(chunk.url, timeout=30).content
        if self._save_dir is not None:
            (self._save_dir / f"{message_key}-{chunk.index:02d}.mp3").write_bytes(data)
        if self._player is not None:
            with tempfile.NamedTemporaryFile(suffix=".mp3") as handle:
                handle.write(data)
                handle.flush()
                subprocess.run([*self._player, handle.name], check=False)


class Spinner:
    """A spinner on the terminal while waiting for the first words (only on a TTY)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Spinner:
        if self._out.isatty():
            self._thread = threading.Thread(target=self._spin, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None and not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._out.write("\r\033[K")
            self._out.flush()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _spin(self) -> None:
        for frame in itertools.cycle("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"):
            self._out.write(f"\r{frame} thinking…")
            self._out.flush()
            if self._stop.wait(0.1):
                return


def describe(error: AvatariumError) -> str:
    """One readable line (an API error's ``str`` carries its code and request id)."""
    return f"error: {error}"


class Chat:
    def __init__(self, client: Avatarium, avatar: str, speaker: Speaker, out: TextIO) -> None:
        self.client = client
        self.avatar = avatar
        self.speaker = speaker
        self.out = out
        self.conversation_id: str | None = None

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def new_conversation(self) -> None:
        conversation = self.client.conversations.create(self.avatar)
        self.conversation_id = conversation.id
        self.say(f"[new conversation {conversation.id} with {self.avatar}]")

    def command(self, line: str) -> bool:
        """Handle a slash command; False to quit."""
        name, _, argument = line.partition(" ")
        if name in ("/quit", "/exit"):
            return False
        if name == "/new":
            self.new_conversation()
        elif name == "/avatar":
            if not argument.strip():
                names = ", ".join(a.id for a in self.client.avatars.list())
                self.say(f"avatars: {names}")
            else:
                self.client.avatars.get(argument.strip())  # a typo is avatar_not_found here
                self.avatar = argument.strip()
                self.new_conversation()
        elif name == "/history":
            if self.conversation_id is not None:
                page = self.client.messages.list(self.conversation_id, limit=100)
                for message in page.data:
                    who = "you" if message.role == "user" else self.avatar
                    self.say(f"{who}> {message.content}")
        else:
            self.say(HELP)
        return True

    def send(self, content: str) -> None:
        if self.conversation_id is None:
            self.new_conversation()
        assert self.conversation_id is not None
        spinner = Spinner(sys.stderr)
        started = False
        with spinner:
            for event in self.client.messages.stream(self.conversation_id, content):
                if isinstance(event, TextDelta):
                    if not started:
                        spinner.stop()
                        self.out.write(f"{self.avatar}> ")
                        started = True
                    self.out.write(event.delta)
                    self.out.flush()
                elif isinstance(event, AudioChunk):
                    self.speaker.add(self.conversation_id, event)
                elif isinstance(event, Done):
                    self.out.write("\n")
                    self.out.flush()

    def loop(self) -> None:
        self.say(f"Talking to {self.avatar} at {self.client.config.base_url}. {HELP}")
        while True:
            try:
                line = input("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                self.say("")
                return
            if not line:
                continue
            try:
                if line.startswith("/"):
                    if not self.command(line):
                        return
                else:
                    self.send(line)
            except KeyboardInterrupt:
                self.say("\n[interrupted]")
            except AvatariumError as error:
                self.say(describe(error))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avatarium chat", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Start the chat with parsed arguments."""
    try:
        client = Avatarium(args.key, base_url=args.url)
    except AvatariumError as error:
        print(describe(error), file=sys.stderr)
        return 2
    save_dir = Path(args.save_audio) if args.save_audio else None
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
    player = None if args.no_play else find_player()
    speaker = Speaker(client, player, save_dir)
    if not speaker.active:
        print("(no MP3 player found: text only; --save-audio DIR keeps the speech)")
    chat = Chat(client, args.avatar, speaker, sys.stdout)
    try:
        chat.loop()
    except APIConnectionError as error:
        print(describe(error), file=sys.stderr)
        return 1
    finally:
        speaker.wait()
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
