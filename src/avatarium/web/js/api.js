// The Avatarium API as this page uses it: REST with a key or client token, a conversation
// WebSocket (with a client token, as browsers cannot set headers on a WebSocket), and the
// Server-Sent Events fallback read from a fetch() body.

export class ApiError extends Error {
  constructor(body, status, retryAfter) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.code = error.code || "unknown_error";
    this.details = error.details || {};
    this.requestId = error.request_id || null;
    this.status = status;
    this.retryAfter = retryAfter ?? null;
  }
}

async function errorFrom(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  const retry = response.headers.get("Retry-After");
  return new ApiError(body, response.status, retry === null ? null : Number(retry));
}

export async function request(path, { method = "GET", credential = null, body } = {}) {
  const headers = {};
  if (credential) headers.Authorization = `Bearer ${credential}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await errorFrom(response);
  return response.json();
}

// Parses text/event-stream (the WHATWG rules this page needs: event, data, comments).
function sseParser(onEvent) {
  let buffer = "", name = "", data = [];
  return (text) => {
    buffer += text;
    let match;
    while ((match = /\r\n|\r|\n/.exec(buffer)) !== null) {
      const line = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      if (line === "") {
        if (data.length) onEvent(name || "message", JSON.parse(data.join("\n")));
        name = ""; data = [];
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      }
    }
  };
}

const FRAME_KINDS = { "message.delta": "message", message: "message", audio: "audio",
                      done: "done", error: "error", cancelled: "cancelled" };

// One turn over SSE: calls handlers.message/audio/done/error with the event data.
export async function streamOverSSE(conversationId, token, content, handlers, signal) {
  const response = await fetch(`/v1/conversations/${conversationId}/messages`, {
    method: "POST", signal,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ content, stream: true }),
  });
  if (!response.ok) throw await errorFrom(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let finished = false;
  const feed = sseParser((kind, data) => {
    if (kind === "done" || kind === "error") finished = true;
    if (kind === "error") handlers.error(new ApiError(data, 0, null));
    else handlers[FRAME_KINDS[kind]]?.(data);
  });
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    feed(value);
  }
  if (!finished) handlers.error(new ApiError(null, 0, null));
}

const VOICE_FRAMES = new Set(["state", "transcript.partial", "transcript.final", "interrupted"]);

// The conversation's WebSocket. open() resolves once the server said "ready".
export class ConversationSocket {
  constructor(conversationId, token) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.url = `${scheme}://${location.host}/v1/conversations/${conversationId}/ws?token=${encodeURIComponent(token)}`;
    this.handlers = null;  // the turn in progress: message/audio/done/error/cancelled
    this.onclose = null;
    this.onvoice = null;  // state, transcript.partial, transcript.final, interrupted frames
  }

  open(timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      const timer = setTimeout(() => { socket.close(); reject(new Error("timeout")); }, timeoutMs);
      let ready = false;
      socket.onmessage = (message) => {
        const frame = JSON.parse(message.data);
        if (!ready) {
          clearTimeout(timer);
          if (frame.type === "ready") { ready = true; this.socket = socket; resolve(this); }
          else reject(new ApiError(frame, 0, frame.retry_after));
          return;
        }
        this.dispatch(frame);
      };
      socket.onerror = () => { if (!ready) { clearTimeout(timer); reject(new Error("socket")); } };
      socket.onclose = (event) => {
        if (!ready) { clearTimeout(timer); reject(new Error(`closed ${event.code}`)); return; }
        this.socket = null;
        if (this.handlers) this.handlers.error(new ApiError(null, 0, null));
        this.handlers = null;
        this.onclose?.(event);
      };
    });
  }

  get isOpen() { return Boolean(this.socket); }

  dispatch(frame) {
    if (VOICE_FRAMES.has(frame.type)) {
      this.onvoice?.(frame);
      return;
    }
    const handlers = this.handlers;
    if (!handlers && frame.type === "error") {
      this.onvoice?.(frame);  // not a reply's: a spoken turn failed before it began
      return;
    }
    if (!handlers || frame.type === "pong") return;
    const kind = FRAME_KINDS[frame.type];
    if (kind === "error") {
      this.handlers = null;
      handlers.error(new ApiError(frame, 0, frame.retry_after));
    } else if (kind === "done" || kind === "cancelled") {
      this.handlers = null;
      handlers[kind]?.(frame);
    } else if (kind) {
      handlers[kind](frame);
    }
  }

  send(content, handlers) {
    this.handlers = handlers;
    this.socket.send(JSON.stringify({ type: "message", content }));
  }

  sendFrame(frame) { this.socket?.send(JSON.stringify(frame)); }

  sendAudio(buffer) { this.socket?.send(buffer); }

  close() { this.socket?.close(); }
}
