// The demo page: pick an avatar, talk to it, hear it, watch its lips move.
import { ApiError, ConversationSocket, request, streamOverSSE } from "./api.js";
import { SpeechPlayer, speakInBrowser } from "./player.js";
import { VoiceSession } from "./voice.js";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "avatarium.apiKey";

const ui = {
  setupForm: $("setup-form"), key: $("api-key"), avatar: $("avatar"), start: $("start"),
  browserVoice: $("browser-voice"),
  stage: $("stage"), view: $("avatar-view"), status: $("status"), transcript: $("transcript"),
  problem: $("problem"), problemText: $("problem-text"), retry: $("retry"),
  composer: $("composer"), message: $("message"), send: $("send"), transport: $("transport"),
  voice: $("voice"), mic: $("mic"), handsFree: $("hands-free"), partial: $("partial"),
};

const session = {
  key: null, avatarId: null, conversationId: null, token: null, socket: null,
  busy: false, blockedUntil: 0, lastContent: null, avatarName: "Avatar", voice: null,
};

let mouth = null;
const player = new SpeechPlayer({
  onMouth: (shape) => { if (mouth && mouth.dataset.show !== shape) mouth.dataset.show = shape; },
  onSpeaking: (speaking) => setState(speaking ? "speaking" : idleState()),
  onClock: (seconds) => { ui.view.dataset.audioTime = seconds.toFixed(3); },
});

// "Listening…" only while the microphone is really open.
function idleState() {
  return session.voice ? VOICE_FACE[session.voice.state] : "idle";
}

const STATUS = {
  idle: "Ready.", listening: "Listening…", recording: "Hearing you…",
  processing: "Transcribing…", thinking: "Thinking…", speaking: "Speaking…",
};
// The server's voice states as the face shows them.
const VOICE_FACE = {
  IDLE: "idle", LISTENING: "listening", RECORDING: "recording", PROCESSING: "processing",
  THINKING: "thinking", SPEAKING: "speaking",
};

function setState(state) {
  ui.view.dataset.state = state;
  ui.status.textContent = STATUS[state];
}

// Errors, shown kindly.

let countdown = null;

function describe(error) {
  if (!(error instanceof ApiError)) return "The connection to the server was lost. Try again.";
  if (error.code === "unknown_error") return "The reply was cut off. Try again.";
  const where = error.requestId ? ` (request ${error.requestId})` : "";
  return `${error.code}: ${error.message}${where}`;
}

function showProblem(error) {
  clearInterval(countdown);
  ui.problem.hidden = false;
  ui.retry.hidden = true;
  let text = describe(error);
  if (error instanceof ApiError && error.code === "rate_limit_exceeded") {
    const seconds = Math.max(1, Math.ceil(error.retryAfter || 1));
    session.blockedUntil = Date.now() + seconds * 1000;
    const tick = () => {
      const left = Math.ceil((session.blockedUntil - Date.now()) / 1000);
      if (left <= 0) {
        clearInterval(countdown);
        session.blockedUntil = 0;
        ui.problemText.textContent = "You can send again.";
        updateSendable();
        return;
      }
      ui.problemText.textContent = `Too many requests for now. You can send again in ${left} s.`;
      updateSendable();
    };
    tick();
    countdown = setInterval(tick, 250);
    return;
  }
  if (error instanceof ApiError && error.code === "quota_exceeded") {
    const resets = error.details.resets_at ? new Date(error.details.resets_at) : null;
    text = `This month's messages are used up${resets ? `; the quota resets on ${resets.toLocaleString()}` : ""}. (quota_exceeded)`;
  }
  if (error instanceof ApiError && /provider_error$/.test(error.code)) {
    text = `${describe(error)} The provider may recover in a moment.`;
    ui.retry.hidden = false;
  } else if (!(error instanceof ApiError) || error.code === "unknown_error") {
    ui.retry.hidden = false;
  }
  ui.problemText.textContent = text;
}

function clearProblem() {
  if (session.blockedUntil) return;
  ui.problem.hidden = true;
  ui.retry.hidden = true;
}

function updateSendable() {
  ui.send.disabled = session.busy || Date.now() < session.blockedUntil;
}

// The transcript.

function addLine(role, text) {
  const item = document.createElement("li");
  item.className = role;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : session.avatarName;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(who, body);
  ui.transcript.append(item);
  item.scrollIntoView({ block: "end" });
  return body;
}

// Setup: avatars, key, conversation, client token, transport.

// The presets, and with a key the account's own avatars too.
async function loadAvatars(credential = null) {
  const list = await request("/v1/avatars", { credential });
  const chosen = ui.avatar.value;
  ui.avatar.replaceChildren();
  for (const avatar of list.data) {
    const mine = avatar.owner === "account" ? " (yours)" : "";
    const label = `${avatar.name}${mine}${avatar.description ? ` — ${avatar.description}` : ""}`;
    const option = new Option(label, avatar.id);
    option.dataset.model = avatar.model_url;
    option.dataset.name = avatar.name;
    ui.avatar.append(option);
  }
  const ids = list.data.map((a) => a.id);
  ui.avatar.value = ids.includes(chosen) ? chosen : (ids.includes("aria-001") ? "aria-001" : ids[0]);
}

async function showAvatar(option) {
  // Faces are drawn inline from this server; an image elsewhere gets the generic face.
  const url = new URL(option.dataset.model, location.href);
  const path = url.origin === location.origin ? url.pathname : "/static/avatars/default.svg";
  const response = await fetch(path);
  ui.view.innerHTML = await response.text();
  ui.view.querySelector("svg")?.setAttribute("aria-hidden", "true");
  mouth = ui.view.querySelector("#mouth");
}

async function connect() {
  session.token = (await request(`/v1/conversations/${session.conversationId}/client_tokens`, {
    method: "POST", credential: session.key, body: {},
  })).token;
  const socket = new ConversationSocket(session.conversationId, session.token);
  try {
    session.socket = await socket.open();
    session.socket.onclose = () => { session.socket = null; };
    ui.transport.textContent = "Connected over a WebSocket with a client token.";
  } catch {
    session.socket = null;
    ui.transport.textContent = "WebSocket unavailable: using Server-Sent Events instead.";
  }
}

async function start(event) {
  event.preventDefault();
  player.unlock();
  session.key = ui.key.value.trim();
  sessionStorage.setItem(KEY_STORAGE, session.key);
  const option = ui.avatar.selectedOptions[0];
  session.avatarId = option.value;
  session.avatarName = option.dataset.name;
  ui.start.disabled = true;
  try {
    const body = { avatar_id: session.avatarId };
    if (ui.browserVoice.checked) body.tts_provider = "browser";
    const conversation = await request("/v1/conversations", {
      method: "POST", credential: session.key, body,
    });
    session.conversationId = conversation.id;
    await showAvatar(option);
    await connect();
    setupVoice();
    ui.stage.hidden = false;
    ui.setupForm.closest("section").hidden = true;
    setState("idle");
    ui.message.focus();
    if (conversation.message_count) await showGreeting();
  } catch (error) {
    ui.start.disabled = false;
    alertSetup(error);
  }
}

// An avatar with a greeting opens the conversation: show it, and speak it.
async function showGreeting() {
  const list = await request(`/v1/conversations/${session.conversationId}/messages`, {
    credential: session.token,
  });
  for (const message of list.data) {
    const line = addLine(message.role, message.content);
    line.closest("li").dataset.messageId = message.id;
    if (message.audio) player.enqueue(message.audio);
    else if (message.speech?.provider === "browser") {
      speakInBrowser(message.speech, (on) => setState(on ? "speaking" : idleState()));
    }
  }
}

function alertSetup(error) {
  let note = ui.setupForm.querySelector(".setup-error");
  if (!note) {
    note = document.createElement("p");
    note.className = "setup-error";
    note.setAttribute("role", "alert");
    ui.setupForm.append(note);
  }
  note.textContent = describe(error);
}

// A turn.

// The handlers of one reply: its text, its audio, its end (resolve(null)) or failure.
function replyHandlers(reply, resolve) {
  return {
    message: (data) => { reply.textContent += data.delta; },
    audio: (data) => player.enqueue(data),
    done: (data) => {
      reply.textContent = data.content;
      reply.closest("li").dataset.messageId = data.id;
      if (data.speech && data.speech.provider === "browser") {
        speakInBrowser(data.speech, (on) => setState(on ? "speaking" : idleState()));
      }
      resolve(null);
    },
    cancelled: () => resolve(null),
    error: (error) => resolve(error),
  };
}

async function send(content) {
  session.busy = true;
  session.lastContent = content;
  updateSendable();
  clearProblem();
  addLine("user", content);
  const reply = addLine("assistant", "");
  setState("thinking");
  const finished = new Promise((resolve) => {
    const handlers = replyHandlers(reply, resolve);
    const run = async () => {
      if (!session.socket?.isOpen && ui.transport.textContent.startsWith("Connected")) {
        await connect();  // the socket closed (for example the token expired): reopen it
      }
      if (session.socket?.isOpen) session.socket.send(content, handlers);
      else await streamOverSSE(session.conversationId, session.token, content, handlers);
    };
    run().catch((error) => resolve(error));
  });
  const error = await finished;
  session.busy = false;
  if (error) {
    reply.closest("li").remove();
    showProblem(error);
  }
  if (!player.speaking) setState(idleState());
  updateSendable();
}

// Voice: push-to-talk (the button or the space bar) and hands-free.

function spokenTurn(transcript) {
  clearProblem();
  addLine("user", transcript).closest("li").classList.add("spoken");
  const reply = addLine("assistant", "");
  session.busy = true;
  updateSendable();
  return replyHandlers(reply, (error) => {
    session.busy = false;
    updateSendable();
    if (error) { reply.closest("li").remove(); showProblem(error); }
  });
}

function markInterrupted(frame) {
  const item = [...ui.transcript.querySelectorAll("li.assistant")].pop();
  if (!item) return;
  item.classList.add("interrupted");
  item.dataset.messageId = frame.message_id;
  if (frame.message) item.querySelector(".text").textContent = frame.message.content;
  session.busy = false;
  updateSendable();
}

function setupVoice() {
  if (!session.socket || !navigator.mediaDevices?.getUserMedia || !window.AudioWorkletNode) {
    ui.voice.hidden = true;  // voice needs the WebSocket and a microphone API
    return;
  }
  ui.voice.hidden = false;
  session.voice = new VoiceSession(session.socket, player, {
    onState: (state) => {
      ui.mic.dataset.state = state;
      if (!player.speaking || state === "RECORDING") setState(idleState());
    },
    onPartial: (text) => { ui.partial.textContent = text; },
    onTurn: spokenTurn,
    onInterrupted: markInterrupted,
    onError: showProblem,
  });
}

async function pressToTalk() {
  if (!session.voice || ui.handsFree.checked || session.voice.recording) return;
  player.unlock();
  ui.mic.setAttribute("aria-pressed", "true");
  try {
    await session.voice.startRecording();
  } catch (error) {
    ui.mic.setAttribute("aria-pressed", "false");
    showMicProblem(error);
  }
  setState(idleState());
}

function releaseToTalk() {
  if (!session.voice || ui.handsFree.checked) return;
  ui.mic.setAttribute("aria-pressed", "false");
  session.voice.stopRecording();
  setState(idleState());
}

async function toggleHandsFree() {
  if (!session.voice) return;
  player.unlock();
  if (ui.handsFree.checked) {
    try {
      await session.voice.startVoice();
    } catch (error) {
      ui.handsFree.checked = false;
      showMicProblem(error);
    }
  } else {
    session.voice.stopVoice();
  }
  ui.mic.disabled = ui.handsFree.checked;
  setState(idleState());
}

function showMicProblem(error) {
  ui.problem.hidden = false;
  ui.retry.hidden = true;
  ui.problemText.textContent = error?.name === "NotAllowedError"
    ? "The microphone is blocked for this page; allow it in the browser to talk."
    : `The microphone could not be opened (${error?.message || error}).`;
}

function submit(event) {
  event.preventDefault();
  const content = ui.message.value.trim();
  if (!content || ui.send.disabled) return;
  player.unlock();
  ui.message.value = "";
  send(content);
}

// Wiring.

ui.setupForm.addEventListener("submit", start);
ui.composer.addEventListener("submit", submit);
ui.message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) submit(event);
});
ui.mic.addEventListener("pointerdown", (event) => { event.preventDefault(); pressToTalk(); });
ui.mic.addEventListener("pointerup", releaseToTalk);
ui.mic.addEventListener("pointerleave", () => { if (session.voice?.recording) releaseToTalk(); });
ui.handsFree.addEventListener("change", toggleHandsFree);
// The space bar talks, except while typing.
const typing = (target) => ["TEXTAREA", "INPUT", "SELECT", "BUTTON"].includes(target.tagName);
document.addEventListener("keydown", (event) => {
  if (event.code !== "Space" || event.repeat || typing(event.target) || ui.stage.hidden) return;
  event.preventDefault();
  pressToTalk();
});
document.addEventListener("keyup", (event) => {
  if (event.code !== "Space" || typing(event.target) || ui.stage.hidden) return;
  event.preventDefault();
  releaseToTalk();
});
ui.retry.addEventListener("click", () => {
  if (session.lastContent && !ui.send.disabled) {
    ui.transcript.lastElementChild?.remove();  // the failed turn's own line comes back
    send(session.lastContent);
  }
});

ui.key.value = sessionStorage.getItem(KEY_STORAGE) || "";
ui.key.addEventListener("change", () => {
  const key = ui.key.value.trim();
  loadAvatars(key || null).catch(() => loadAvatars().catch(alertSetup));
});
loadAvatars(ui.key.value.trim() || null).catch(() => loadAvatars().catch(alertSetup));
