// /embed/{avatar_id}: the avatar in an iframe, driven by its parent page with Avatarium's
// voice-mode postMessage protocol. It never holds a secret key: the parent hands it a
// conversation id and a client token (from the parent's own backend).
//
// parent → iframe: {type: "connect", conversationId, token}, {type: "setVoiceMode", mode:
//   "continuous" | "pushToTalk"}, {type: "startVoice"}, {type: "stopVoice"},
//   {type: "startRecording"}, {type: "stopRecording"}, {type: "stopSpeaking"},
//   {type: "getState"}
// iframe → parent (all with source: "avatarium"): {type: "ready", avatarId, capabilities},
//   {type: "connected", conversationId}, {type: "stateChanged", state},
//   {type: "modeChanged", mode}, {type: "transcript", role, text, final},
//   {type: "error", code, message}
import { ApiError, ConversationSocket, request } from "./api.js";
import { SpeechPlayer } from "./player.js";
import { VoiceSession } from "./voice.js";

const avatarId = decodeURIComponent(location.pathname.split("/").pop());
const view = document.getElementById("avatar-view");
const status = document.getElementById("status");
const partial = document.getElementById("partial");
const FACE = {
  IDLE: "idle", LISTENING: "listening", RECORDING: "recording", PROCESSING: "processing",
  THINKING: "thinking", SPEAKING: "speaking",
};
const WORDS = {
  IDLE: "Ready.", LISTENING: "Listening…", RECORDING: "Hearing you…",
  PROCESSING: "Transcribing…", THINKING: "Thinking…", SPEAKING: "Speaking…",
};

let mouth = null;
let voice = null;
let lastState = null;
const player = new SpeechPlayer({
  onMouth: (shape) => { if (mouth && mouth.dataset.show !== shape) mouth.dataset.show = shape; },
  onSpeaking: () => report(),
  onClock: () => {},
});

function post(message) {
  // Nothing secret goes out (states, transcripts), so any parent may listen.
  window.parent.postMessage({ source: "avatarium", ...message }, "*");
}

function currentState() {
  return voice ? voice.state : "IDLE";
}

function report(force = false) {
  const state = currentState();
  view.dataset.state = FACE[state];
  status.textContent = WORDS[state];
  if (force || state !== lastState) post({ type: "stateChanged", state });
  lastState = state;
}

function fail(error) {
  const code = error instanceof ApiError ? error.code : (error?.name || "error");
  post({ type: "error", code, message: error?.message || String(error) });
}

function turnHandlers(text) {
  post({ type: "transcript", role: "user", text, final: true });
  let reply = "";
  const end = () => report();
  return {
    message: (data) => { reply += data.delta; },
    audio: (data) => player.enqueue(data),
    done: (data) => { post({ type: "transcript", role: "assistant", text: data.content, final: true }); end(); },
    cancelled: end,
    error: (error) => { fail(error); end(); },
  };
}

async function connect(conversationId, token) {
  if (!faceDrawn) await drawFace(token);
  voice?.close();
  const socket = await new ConversationSocket(conversationId, token).open();
  voice = new VoiceSession(socket, player, {
    onState: () => report(),
    onPartial: (text) => {
      partial.textContent = text;
      if (text) post({ type: "transcript", role: "user", text, final: false });
    },
    onTurn: turnHandlers,
    onInterrupted: () => report(),
    onError: fail,
  });
  post({ type: "connected", conversationId });
  report(true);
}

const COMMANDS = {
  connect: (message) => connect(message.conversationId, message.token),
  setVoiceMode: (message) => {
    voice.setMode(message.mode);
    post({ type: "modeChanged", mode: voice.mode });
  },
  startVoice: async () => {
    player.unlock();
    if (voice.mode === "continuous") await voice.startVoice();
    else await voice.startRecording();
  },
  stopVoice: () => voice.stopVoice(),
  startRecording: async () => { player.unlock(); await voice.startRecording(); },
  stopRecording: () => voice.stopRecording(),
  stopSpeaking: () => voice.stopSpeaking(),
  getState: () => report(true),
};

window.addEventListener("message", async (event) => {
  if (event.source !== window.parent || !event.data || typeof event.data !== "object") return;
  const command = COMMANDS[event.data.type];
  if (!command) return;
  if (!voice && event.data.type !== "connect" && event.data.type !== "getState") {
    post({ type: "error", code: "not_connected", message: "Send connect first." });
    return;
  }
  try {
    await command(event.data);
  } catch (error) {
    fail(error);
  }
  report();
});

// A preset's face is public; a custom avatar's is read with the client token of a
// conversation with it, so it is drawn once the parent has connected.
const custom = avatarId.startsWith("avt_");
let faceDrawn = false;

async function drawFace(credential) {
  const avatar = await request(`/v1/avatars/${encodeURIComponent(avatarId)}`, { credential });
  const url = new URL(avatar.model_url, location.href);
  if (url.origin === location.origin) {
    const svg = await fetch(url.pathname);
    view.innerHTML = await svg.text();
    view.querySelector("svg")?.setAttribute("aria-hidden", "true");
    mouth = view.querySelector("#mouth");
  } else {
    const image = document.createElement("img");
    image.alt = "";
    image.src = url.href;
    view.replaceChildren(image);
    mouth = null;
  }
  faceDrawn = true;
}

async function boot() {
  if (!custom) await drawFace(null);
  status.textContent = "Ready.";
  post({
    type: "ready",
    avatarId,
    capabilities: {
      voice: Boolean(navigator.mediaDevices?.getUserMedia && window.AudioWorkletNode),
      modes: ["pushToTalk", "continuous"],
      bargeIn: true,
      partialTranscripts: true,
    },
  });
  // A token may also come in the fragment (never sent to any server): #conversation=…&token=…
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("conversation") && fragment.get("token")) {
    await connect(fragment.get("conversation"), fragment.get("token"));
  }
}

boot().catch(fail);
