"""The web page in real (headless) Chromium against the real server process.

Chromium is Debian's package, driven by Playwright through ``executable_path`` (no browser
download); ``make test`` installs it. A screenshot of the page mid-reply is written to
``test-artifacts/web-mid-reply.png`` (not committed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import service_missing
from tests.server_process import Server, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def chromium() -> Iterator[Any]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        service_missing("Chromium", FileNotFoundError("install Debian's chromium package"))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            # A person's click unlocks audio; a headless run has no speakers to wait for.
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        yield browser
        browser.close()


RECORDER = """() => {
  const recorded = window.recorded = { lengths: [], shapes: [], clock: [] };
  const view = document.querySelector('#avatar-view');
  new MutationObserver(() => {
    const reply = document.querySelector('#transcript li.assistant .text');
    if (reply && reply.textContent) recorded.lengths.push(reply.textContent.length);
  }).observe(document.querySelector('#transcript'),
             { subtree: true, childList: true, characterData: true });
  new MutationObserver(() => {
    recorded.shapes.push(view.querySelector('#mouth').dataset.show);
  }).observe(view.querySelector('#mouth'), { attributes: true });
  new MutationObserver(() => {
    if (view.dataset.audioTime) recorded.clock.push(Number(view.dataset.audioTime));
  }).observe(view, { attributes: true, attributeFilter: ['data-audio-time'] });
}"""


@pytest.fixture
def served(tmp_path: Path, server_factory: list[Server]) -> tuple[str, str]:
    """A fresh server process: its base URL and the free-tier key its first start printed."""
    server = Server(tmp_path, free_port())
    server_factory.append(server)
    server.wait_ready()
    return server.base, server.first_key


def open_page(
    chromium: Any, base: str, init_script: str | None = None, **options: Any
) -> tuple[Any, list[str]]:
    """The page at ``/``, and the console errors it logs (collected from the start)."""
    page = chromium.new_page(**options)
    if init_script:
        page.add_init_script(init_script)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(base + "/")
    return page, problems


def test_talking_to_aria_in_the_browser(
    chromium: Any, served: tuple[str, str], tmp_path: Path
) -> None:
    base, key = served
    page, problems = open_page(chromium, base)
    assert "session storage only" in page.text_content("#key-note")
    page.wait_for_selector("#avatar option[value='aria-001']", state="attached")

    # Keyboard only: type the key, Tab to the avatar, Tab to the button, Enter.
    page.focus("#api-key")
    page.keyboard.type(key)
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#stage:not([hidden])", timeout=15_000)
    assert page.text_content("#transport").startswith("Connected over a WebSocket")
    assert page.evaluate("sessionStorage.getItem('avatarium.apiKey')") == key
    assert page.get_attribute("#transcript", "aria-live") == "polite"
    assert page.evaluate("document.activeElement.id") == "message"

    # Record every change the page makes while it replies (sampling could miss some).
    page.evaluate(RECORDER)
    page.keyboard.type("Tell me about the moon.")
    page.keyboard.press("Enter")
    # The page's CSP forbids eval, which wait_for_function needs: poll with evaluate instead.
    state = "document.querySelector('#avatar-view').dataset.state"
    wait_until(lambda: page.evaluate(state) == "speaking", 30, "the avatar to speak")
    wait_until(lambda: page.evaluate("window.recorded.clock.length") > 5, 10, "the audio clock")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-mid-reply.png"))
    wait_until(lambda: page.evaluate(state) in ("idle", "listening"), 60, "the reply to end")
    recorded = page.evaluate("window.recorded")
    # The text streamed in (it grew in several steps), speech played on the audio clock,
    # and the mouth took several shapes while it did.
    assert len(set(recorded["lengths"])) >= 3, recorded["lengths"]
    clock = recorded["clock"]
    assert clock[-1] > clock[0] + 0.5 and clock == sorted(clock), clock[:5]
    assert len(set(recorded["shapes"]) - {"rest"}) >= 3, recorded["shapes"]
    assert page.text_content("#transcript li.assistant .text")

    # Past the account's requests a minute: the countdown, with sending disabled. The limit
    # comes down to one request a minute (read from the account at every request), so the
    # countdown comes at the first turn, or at the second if the page's earlier requests
    # have already left the minute on a slow machine, however slowly turns are answered
    # (at the free tier's 10, seven turns had to fit in one minute).
    env = {**os.environ, "AVATARIUM_DATA_DIR": str(tmp_path)}  # the served server's
    env.pop("AVATARIUM_DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "-m", "avatarium.cli", "accounts", "set-limits", "default", "--rpm", "1"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip

    def counting_down() -> bool:
        return page.is_visible("#problem") and "send again in" in (
            page.text_content("#problem-text") or ""
        )

    for turn in range(20):
        wait_until(lambda: page.is_enabled("#send"), 30, "the send button")
        page.fill("#message", f"Message number {turn}.")
        page.keyboard.press("Enter")
        wait_until(lambda: page.is_enabled("#send") or counting_down(), 30, "the turn to finish")
        if counting_down():
            break
    assert turn <= 1, turn  # refused once the minute's one request was used
    first = page.text_content("#problem-text") or ""
    assert not page.is_enabled("#send")
    seconds = int(first.split("send again in ")[1].split(" ")[0])
    assert 1 <= seconds <= 60
    page.wait_for_timeout(1600)
    later = int((page.text_content("#problem-text") or "").split("send again in ")[1].split()[0])
    assert later < seconds  # it counts down
    wait_until(lambda: page.is_enabled("#send"), seconds + 5, "sending to be enabled again")
    assert page.text_content("#problem-text") == "You can send again."
    assert problems == [], problems


def test_a_phone_with_reduced_motion_and_no_websocket(
    chromium: Any, served: tuple[str, str]
) -> None:
    base, key = served
    # A network that cannot carry WebSockets: the page must fall back to Server-Sent Events.
    page, problems = open_page(
        chromium,
        base,
        "delete window.WebSocket",
        viewport={"width": 360, "height": 740},
        reduced_motion="reduce",
    )
    page.fill("#api-key", key)
    page.wait_for_selector("#avatar option[value='luna-003']", state="attached")
    page.select_option("#avatar", "luna-003")
    page.click("#start")
    page.wait_for_selector("#stage:not([hidden])", timeout=15_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    box = page.locator("#avatar-view").bounding_box()
    assert box is not None and box["width"] <= 360
    animation = page.evaluate("getComputedStyle(document.querySelector('#eyes')).animationName")
    assert animation == "none"
    assert "Server-Sent Events" in (page.text_content("#transport") or "")
    page.fill("#message", "Hello over SSE!")
    page.keyboard.press("Enter")
    page.wait_for_selector("#transcript li.assistant .text:not(:empty)", timeout=30_000)
    wait_until(lambda: page.is_enabled("#send"), 30, "the reply to finish")
    assert not page.is_visible("#problem")
    assert problems == [], problems


def test_the_browser_voice_speaks_the_reply(chromium: Any, served: tuple[str, str]) -> None:
    base, key = served
    # Record what the page asks the browser to say (headless Chromium has no voices).
    page, problems = open_page(
        chromium,
        base,
        "window.spoken = []; speechSynthesis.speak = (u) => window.spoken.push(u.text);",
    )
    page.fill("#api-key", key)
    page.check("#browser-voice")
    page.click("#start")
    page.wait_for_selector("#stage:not([hidden])", timeout=15_000)
    page.fill("#message", "Hello!")
    page.keyboard.press("Enter")
    wait_until(lambda: page.evaluate("window.spoken.length") == 1, 30, "speech synthesis")
    reply = page.text_content("#transcript li.assistant .text")
    assert page.evaluate("window.spoken[0]") == reply and reply
    assert page.get_attribute("#avatar-view", "data-audio-time") is None  # no server audio
    assert problems == [], problems


EMBED_JS = """
export async function run(base, key) {
  const json = { "Content-Type": "application/json" };
  const created = await fetch(base + "/v1/conversations", {
    method: "POST", headers: { ...json, Authorization: "Bearer " + key,
                               "Idempotency-Key": crypto.randomUUID() },
    body: JSON.stringify({ avatar_id: "aria-001" }) });
  const conversation = await created.json();
  const issued = await (await fetch(base + `/v1/conversations/${conversation.id}/client_tokens`, {
    method: "POST", headers: { Authorization: "Bearer " + key } })).json();
  // The SSE fallback of docs/embedding.md: a POST with the token, the body read as a stream.
  const response = await fetch(base + `/v1/conversations/${conversation.id}/messages`, {
    method: "POST", headers: { ...json, Authorization: "Bearer " + issued.token },
    body: JSON.stringify({ content: "Hello from another site!", stream: true }) });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const events = [];
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\\n\\n")) >= 0) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      const name = (block.match(/^event: (.*)$/m) || [])[1];
      const data = (block.match(/^data: (.*)$/m) || [])[1];
      if (name) events.push({ name, data: JSON.parse(data) });
    }
  }
  // Then the speech, fetched and decoded as the page's player does.
  const context = new OfflineAudioContext(1, 22050, 22050);
  const durations = [];
  for (const event of events.filter(e => e.name === "audio")) {
    const bytes = await (await fetch(event.data.url)).arrayBuffer();
    durations.push((await context.decodeAudioData(bytes)).duration);
  }
  return {
    remaining: created.headers.get("X-RateLimit-Remaining"),
    requestId: response.headers.get("X-Request-Id"),
    kinds: events.map(e => e.name),
    durations,
  };
}
"""


def _static_site(directory: Path) -> tuple[str, Any]:
    """A plain static file server on another loopback port: another origin."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}", httpd


def test_a_page_on_another_origin_streams_and_plays_with_cors(
    chromium: Any, tmp_path: Path, server_factory: list[Server]
) -> None:
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "embed.js").write_text(EMBED_JS)
    (site_dir / "index.html").write_text(
        '<!doctype html><meta charset="utf-8"><title>shop</title>'
        '<script type="module">import("/embed.js").then(m => window.embed = m)</script>'
    )
    allowed, allowed_httpd = _static_site(site_dir)
    other, other_httpd = _static_site(site_dir)
    try:
        server = Server(tmp_path / "data", free_port(), {"AVATARIUM_CORS_ORIGINS": allowed})
        server_factory.append(server)
        server.wait_ready()
        page = chromium.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(allowed + "/")
        wait_until(lambda: page.evaluate("window.embed !== undefined"), 10, "the page's module")
        result = page.evaluate(
            "([base, key]) => window.embed.run(base, key)", [server.base, server.first_key]
        )
        assert result["kinds"][0] == "message" and result["kinds"][-1] == "done", result
        assert "audio" in result["kinds"]
        assert result["durations"] and all(d > 0.1 for d in result["durations"]), result
        assert result["remaining"] is not None  # exposed to the page
        assert result["requestId"].startswith("req_")
        assert not problems, problems
        # The same page on an origin the operator did not list cannot read the API.
        stranger = chromium.new_page()
        stranger.goto(other + "/")
        wait_until(lambda: stranger.evaluate("window.embed !== undefined"), 10, "the module")
        refused = stranger.evaluate(
            "([base, key]) => window.embed.run(base, key).then(() => 'read', e => e.name)",
            [server.base, server.first_key],
        )
        assert refused == "TypeError"  # the browser blocked the response
    finally:
        allowed_httpd.shutdown()
        other_httpd.shutdown()


VOICE_RECORDER = """() => {
  const view = document.querySelector('#avatar-view');
  const seen = window.voiceSeen = { statuses: [], cut: [] };
  new MutationObserver(() => {
    const text = document.querySelector('#status').textContent;
    if (seen.statuses[seen.statuses.length - 1] !== text) seen.statuses.push(text);
  }).observe(document.querySelector('#status'), { childList: true, characterData: true,
                                                  subtree: true });
  new MutationObserver((changes) => {
    for (const change of changes) {
      if (change.target.classList?.contains('interrupted') && !seen.cut.length) {
        seen.cut.push(view.dataset.state);
        setTimeout(() => seen.cut.push(view.dataset.state), 150);
      }
    }
  }).observe(document.querySelector('#transcript'), { subtree: true, attributes: true,
                                                      attributeFilter: ['class'] });
}"""


def fake_microphone(path: Path, *pieces: bytes) -> str:
    """A WAV for Chromium's fake capture device, played once from when the page opens the
    microphone (``%noloop``); the Chromium flags that use it."""
    import wave

    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(b"".join(pieces))
    return f"--use-file-for-fake-audio-capture={path}%noloop"


def heard(text: str, *words: str) -> bool:
    """Whether a transcript holds any of the key ``words`` of what was said."""
    return any(word in text.lower() for word in words)


def voice_browser(playwright: Any, capture: str) -> Any:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        service_missing("Chromium", FileNotFoundError("install Debian's chromium package"))
    return playwright.chromium.launch(
        executable_path=executable,
        args=[
            "--autoplay-policy=no-user-gesture-required",
            "--use-fake-ui-for-media-stream",  # grants the microphone without asking
            "--use-fake-device-for-media-stream",
            capture,
        ],
    )


def start_conversation(page: Any, key: str) -> None:
    page.wait_for_selector("#avatar option[value='aria-001']", state="attached")
    page.fill("#api-key", key)
    page.click("#start")
    page.wait_for_selector("#stage:not([hidden])", timeout=15_000)
    page.wait_for_selector("#voice:not([hidden])", timeout=5_000)


def stored(base: str, key: str) -> list[dict[str, Any]]:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    conversations = httpx.get(f"{base}/v1/conversations", headers=headers).json()["data"]
    return list(
        httpx.get(
            f"{base}/v1/conversations/{conversations[0]['id']}/messages", headers=headers
        ).json()["data"]
    )


def test_hands_free_voice_with_barge_in(served: tuple[str, str], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from tests.voice_audio import silence, spoken_pcm

    base, key = served
    capture = fake_microphone(
        tmp_path / "mic.wav",
        silence(800),
        spoken_pcm("What time does the library open on Sunday?"),
        silence(1500),  # the avatar starts answering; the user talks over it
        spoken_pcm("Please tell me about the weather in Paris today."),
        silence(4000),
    )
    with sync_playwright() as playwright:
        browser = voice_browser(playwright, capture)
        page, problems = open_page(browser, base)
        start_conversation(page, key)
        assert page.text_content("#status") == "Ready."  # the microphone is not open yet
        page.evaluate(VOICE_RECORDER)
        page.check("#hands-free")
        wait_until(lambda: page.text_content("#status") != "Ready.", 10, "the microphone")
        spoken = "#transcript li.user.spoken .text"
        wait_until(lambda: len(page.query_selector_all(spoken)) >= 2, 60, "two spoken turns")
        lines = [e.text_content() or "" for e in page.query_selector_all(spoken)]
        # Through the browser's audio processing (noise suppression, gain control) the
        # synthetic voice is heard less exactly than in the recogniser's own tests: ask
        # for the question's key words, not every word.
        assert heard(lines[0], "library", "sunday") and heard(lines[1], "paris", "weather"), lines
        wait_until(lambda: page.evaluate("window.voiceSeen.cut.length") >= 2, 10, "the barge-in")
        replies = "#transcript li.assistant"
        wait_until(
            lambda: (
                page.get_attribute(f"{replies}:last-child", "data-message-id") is not None
                or page.get_attribute(f"{replies} >> nth=1", "data-message-id") is not None
            ),
            60,
            "the second reply",
        )
        seen = page.evaluate("window.voiceSeen")
        assert seen["statuses"][0] == "Listening…", seen["statuses"]
        assert {"Hearing you…", "Thinking…", "Speaking…"} <= set(seen["statuses"]), seen
        # The reply that was spoken over went silent at once.
        assert seen["cut"][1] != "speaking", seen["cut"]
        classes = [e.get_attribute("class") for e in page.query_selector_all(replies)]
        assert "interrupted" in (classes[0] or ""), classes
        page.uncheck("#hands-free")
        wait_until(lambda: page.text_content("#status") == "Ready.", 30, "the microphone closed")
        assert problems == [], problems
        browser.close()
    messages = stored(base, key)
    assert [m["role"] for m in messages[:4]] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["input"]["type"] == "audio" and messages[1]["interrupted"] is True
    assert messages[3]["interrupted"] is False


def test_push_to_talk_with_the_space_bar(served: tuple[str, str], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from tests.voice_audio import silence, spoken_pcm

    base, key = served
    capture = fake_microphone(
        tmp_path / "ptt.wav",
        silence(300),
        spoken_pcm("How far is the train station from here?"),
        silence(6000),
    )
    with sync_playwright() as playwright:
        browser = voice_browser(playwright, capture)
        page, problems = open_page(browser, base)
        start_conversation(page, key)
        page.evaluate(VOICE_RECORDER)
        page.evaluate("document.activeElement.blur()")  # the space bar types in the box
        page.keyboard.down("Space")
        wait_until(lambda: page.get_attribute("#mic", "aria-pressed") == "true", 5, "press")
        page.wait_for_timeout(3200)  # the question is spoken while the key is held
        page.keyboard.up("Space")
        spoken = "#transcript li.user.spoken .text"
        wait_until(lambda: page.query_selector(spoken) is not None, 30, "the transcript")
        assert heard(page.text_content(spoken) or "", "train", "station")
        state = "document.querySelector('#avatar-view').dataset.state"
        wait_until(lambda: page.evaluate(state) == "speaking", 30, "the spoken reply")
        wait_until(lambda: page.evaluate(state) == "idle", 60, "the reply to end")
        seen = page.evaluate("window.voiceSeen")
        assert "Hearing you…" in seen["statuses"] and "Listening…" not in seen["statuses"]
        assert page.text_content("#status") == "Ready."
        assert problems == [], problems
        browser.close()
    messages = stored(base, key)
    assert messages[0]["input"]["type"] == "audio"
    assert heard(messages[0]["content"], "train", "station")


PARENT_PAGE = """<!doctype html><meta charset="utf-8"><title>a shop with an avatar</title>
<iframe id="avatar" allow="microphone; autoplay" src="{base}/embed/aria-001"
        width="360" height="420"></iframe>
<script>
window.log = [];
addEventListener("message", (event) => {{
  if (event.origin === "{base}" && event.data && event.data.source === "avatarium") {{
    window.log.push(event.data);
  }}
}});
window.tell = (message) => document.getElementById("avatar").contentWindow
  .postMessage(message, "{base}");
</script>"""


def test_the_embed_speaks_the_voice_mode_protocol_to_its_parent(
    tmp_path: Path, server_factory: list[Server]
) -> None:
    import httpx
    from playwright.sync_api import sync_playwright

    from tests.voice_audio import silence, spoken_pcm

    site = tmp_path / "site"
    site.mkdir()
    parent, httpd = _static_site(site)
    try:
        port = free_port()
        server = Server(tmp_path / "data", port, {"AVATARIUM_FRAME_ANCESTORS": parent})
        server_factory.append(server)
        server.wait_ready()
        (site / "index.html").write_text(PARENT_PAGE.format(base=server.base))
        # The parent's backend: a conversation and a client token (the secret key stays here).
        auth = {"Authorization": f"Bearer {server.first_key}"}
        conversation = httpx.post(
            f"{server.base}/v1/conversations", json={"avatar_id": "aria-001"}, headers=auth
        ).json()["id"]
        token = httpx.post(
            f"{server.base}/v1/conversations/{conversation}/client_tokens", json={}, headers=auth
        ).json()["token"]
        capture = fake_microphone(
            tmp_path / "mic.wav",
            silence(500),
            spoken_pcm("What time does the library open on Sunday?"),
            silence(8000),
        )
        with sync_playwright() as playwright:
            browser = voice_browser(playwright, capture)
            page = browser.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(parent + "/")

            def log() -> list[dict[str, Any]]:
                return list(page.evaluate("window.log"))

            def seen(kind: str, **fields: Any) -> bool:
                return any(
                    m["type"] == kind and all(m.get(k) == v for k, v in fields.items())
                    for m in log()
                )

            wait_until(lambda: seen("ready"), 15, "the embed's ready message")
            ready = next(m for m in log() if m["type"] == "ready")
            assert ready["avatarId"] == "aria-001" and ready["capabilities"]["voice"] is True
            assert set(ready["capabilities"]["modes"]) == {"continuous", "pushToTalk"}
            page.evaluate("t => window.tell({type: 'startVoice'})", None)
            wait_until(lambda: seen("error", code="not_connected"), 5, "a refusal")
            page.evaluate(
                "([c, t]) => window.tell({type: 'connect', conversationId: c, token: t})",
                [conversation, token],
            )
            wait_until(lambda: seen("connected"), 10, "the connection")
            assert seen("stateChanged", state="IDLE")
            page.evaluate("() => window.tell({type: 'setVoiceMode', mode: 'continuous'})")
            wait_until(lambda: seen("modeChanged", mode="continuous"), 5, "the mode change")
            page.evaluate("() => window.tell({type: 'startVoice'})")
            wait_until(lambda: seen("stateChanged", state="LISTENING"), 10, "listening")
            wait_until(
                lambda: seen("transcript", role="user", final=True), 30, "the final transcript"
            )
            wait_until(lambda: seen("stateChanged", state="SPEAKING"), 30, "the spoken reply")
            wait_until(lambda: seen("transcript", role="assistant"), 30, "the reply's text")
            user = next(m for m in log() if m["type"] == "transcript" and m["role"] == "user"
                        and m["final"])  # fmt: skip
            assert heard(user["text"], "library", "sunday"), user
            states = [m["state"] for m in log() if m["type"] == "stateChanged"]
            assert (
                states.index("LISTENING")
                < states.index("RECORDING")
                < states.index("THINKING")
                < states.index("SPEAKING")
            ), states
            page.evaluate("() => window.tell({type: 'stopSpeaking'})")
            page.evaluate("() => window.tell({type: 'stopVoice'})")
            page.evaluate("() => window.tell({type: 'getState'})")
            wait_until(lambda: log()[-1] == {"source": "avatarium", "type": "stateChanged",
                                             "state": "IDLE"}, 10, "idle")  # fmt: skip
            assert problems == [], problems
            assert not any(server.first_key in str(m) for m in log())
            browser.close()
        # The embed framed by another origin: allowed only because the operator said so.
        head = httpx.get(f"{server.base}/embed/aria-001")
        assert f"frame-ancestors {parent}" in head.headers["content-security-policy"]
        assert httpx.get(f"{server.base}/embed/nobody").status_code == 404
    finally:
        httpd.shutdown()


def test_the_page_lists_the_accounts_own_avatars(chromium: Any, served: tuple[str, str]) -> None:
    import httpx

    base, key = served
    created = httpx.post(
        f"{base}/v1/avatars",
        json={"name": "Nova", "description": "The Acme guide.",
              "appearance": {"preset": "luna-003"}, "greeting": "Hello from Nova!"},
        headers={"Authorization": f"Bearer {key}"},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    avatar_id = created.json()["id"]
    page, problems = open_page(chromium, base)
    page.wait_for_selector("#avatar option[value='aria-001']", state="attached")
    assert page.query_selector(f"#avatar option[value='{avatar_id}']") is None  # no key yet
    page.fill("#api-key", key)
    page.dispatch_event("#api-key", "change")
    page.wait_for_selector(f"#avatar option[value='{avatar_id}']", state="attached")
    assert "(yours)" in (page.text_content(f"#avatar option[value='{avatar_id}']") or "")
    page.select_option("#avatar", avatar_id)
    page.click("#start")
    page.wait_for_selector("#stage:not([hidden])", timeout=15_000)
    assert page.query_selector("#avatar-view svg") is not None  # Luna's face, drawn inline
    greeting = "#transcript li.assistant .text"
    wait_until(lambda: page.query_selector(greeting) is not None, 10, "the greeting")
    assert page.text_content(greeting) == "Hello from Nova!"
    state = "document.querySelector('#avatar-view').dataset.state"
    wait_until(lambda: page.evaluate(state) == "speaking", 10, "the greeting spoken")
    wait_until(lambda: page.evaluate(state) == "idle", 20, "the greeting to end")
    page.fill("#message", "Hello!")
    page.keyboard.press("Enter")
    wait_until(lambda: page.is_enabled("#send"), 30, "the reply")
    replies = page.query_selector_all("#transcript li.assistant .text")
    assert len(replies) == 2 and replies[1].text_content()
    assert problems == [], problems


def test_the_embed_draws_a_custom_avatar_once_connected(
    chromium: Any, served: tuple[str, str]
) -> None:
    import httpx

    base, key = served
    auth = {"Authorization": f"Bearer {key}"}
    fields = {"name": "Nova", "appearance": {"preset": "luna-003"}}
    avatar_id = httpx.post(f"{base}/v1/avatars", json=fields, headers=auth).json()["id"]
    conversation = httpx.post(
        f"{base}/v1/conversations", json={"avatar_id": avatar_id}, headers=auth
    ).json()["id"]
    token = httpx.post(
        f"{base}/v1/conversations/{conversation}/client_tokens", json={}, headers=auth
    ).json()["token"]
    # Without a token the custom avatar is nobody's business; the page waits for one.
    assert httpx.get(f"{base}/v1/avatars/{avatar_id}").status_code == 404
    assert httpx.get(f"{base}/embed/{avatar_id}").status_code == 200
    assert httpx.get(f"{base}/embed/avt_doesnotexist00000000000").status_code == 404
    page = chromium.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{base}/embed/{avatar_id}#conversation={conversation}&token={token}")
    page.wait_for_selector("#avatar-view svg #mouth", state="attached", timeout=15_000)
    assert problems == [], problems
    page.close()


def test_the_dashboard_draws_the_accounts_analytics_and_retries_a_delivery(
    chromium: Any, tmp_path: Path, server_factory: list[Server]
) -> None:
    import json as json_module

    import httpx

    from tests.fakes.receiver import start_receiver
    from tests.test_limits_workers import cli

    receiver, received = start_receiver()
    received.scripts["/hook"].append("500")  # the first attempt fails; the page sends it again
    extra = {"AVATARIUM_WEBHOOK_ALLOW_PRIVATE": "true", "AVATARIUM_WEBHOOK_RETRY_BASE_S": "600"}
    server = Server(tmp_path, free_port(), extra)
    server_factory.append(server)
    server.wait_ready()
    env = {**os.environ, "AVATARIUM_DATA_DIR": str(tmp_path)}
    env.pop("AVATARIUM_DATABASE_URL", None)
    key = json_module.loads(
        cli(env, "keys", "create", "--account", "dashboard", "--tier", "enterprise", "--json")
    )["key"]
    auth = {"Authorization": f"Bearer {key}"}
    try:
        hook = httpx.post(
            f"{server.base}/v1/webhooks", headers=auth,
            json={"url": f"{receiver.url}/hook", "events": ["conversation.started"]},
        ).json()  # fmt: skip
        conversation = httpx.post(
            f"{server.base}/v1/conversations", headers=auth,
            json={"avatar_id": "aria-001", "tts_provider": "browser"},
        ).json()  # fmt: skip
        for text in ("Hello!", "What can you do?"):
            sent = httpx.post(
                f"{server.base}/v1/conversations/{conversation['id']}/messages",
                headers=auth, json={"content": text}, timeout=60,
            )  # fmt: skip
            assert sent.status_code == 200, sent.text
        wait_until(lambda: received.at("/hook"), 20, "the failing first delivery")
        page = chromium.new_page(viewport={"width": 1100, "height": 1500})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(server.base + "/dashboard")
        page.fill("#api-key", key)
        page.select_option("#period", "7d")
        page.click("#load")
        page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
        tiles = page.inner_text("#tiles")
        assert "Conversations\n1" in tiles and "Messages\n4" in tiles, tiles
        assert "Reply time p50" in tiles and "ms" in tiles
        assert page.locator("#by-day svg rect").count() == 7  # a bar per day, zeros included
        assert "Aria" in page.inner_text("#top-avatars")
        row = page.locator("#deliveries tr[data-delivery]").first
        assert "500" in row.inner_text() and "retrying" in row.inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        row.locator("button").click()
        wait_until(lambda: len(received.at("/hook")) == 2, 20, "the delivery sent again")
        page.wait_for_function(
            "() => document.querySelector('#deliveries').innerText.includes('succeeded')",
            timeout=15_000,
        )
        event = json_module.loads(received.at("/hook")[1].body)
        assert event["data"]["conversation"]["id"] == conversation["id"]
        assert hook["id"] in page.content() or hook["url"] in page.inner_text("#deliveries")
        assert problems == []
    finally:
        receiver.stop()
