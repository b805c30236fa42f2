// Voice mode over the conversation's WebSocket: the microphone's PCM goes out as binary
// frames; the server's state, transcript and interrupted frames come back. Push-to-talk
// (hold a button or the space bar) or continuous (hands-free, with barge-in). Shared by the
// demo page and the embeddable page.
import { ApiError } from "./api.js";
import { Microphone } from "./microphone.js";

export const STATES = ["IDLE", "LISTENING", "RECORDING", "PROCESSING", "THINKING", "SPEAKING"];

export class VoiceSession {
  // socket: an open ConversationSocket; player: the SpeechPlayer; callbacks:
  //   onState(state), onPartial(text), onTurn(transcript) -> handlers for the reply,
  //   onInterrupted(frame), onError(error)
  constructor(socket, player, callbacks) {
    this.socket = socket;
    this.player = player;
    this.on = callbacks;
    this.mode = "pushToTalk";
    this.serverState = "IDLE";
    this.recording = false;
    this.microphone = new Microphone((pcm) => {
      if (this.recording) this.socket.sendAudio(pcm);
    });
    socket.onvoice = (frame) => this.onFrame(frame);
  }

  // What the user sees: the server's state, but SPEAKING while audio still plays here
  // (unless the user is being heard), THINKING while the server speaks and the first audio
  // is still on its way (not a flash of "Ready." between the two), and LISTENING only while
  // the microphone is open.
  get state() {
    const server = this.serverState;
    if (this.player.speaking && server !== "RECORDING" && server !== "PROCESSING") {
      return "SPEAKING";
    }
    if (server === "RECORDING" || server === "PROCESSING" || server === "THINKING") {
      return server;
    }
    if (server === "SPEAKING") return "THINKING";
    return this.microphone.isOpen ? "LISTENING" : "IDLE";
  }

  setMode(mode) {
    if (mode !== "continuous" && mode !== "pushToTalk") throw new Error(`unknown mode ${mode}`);
    const wasOn = this.recording && this.mode === "continuous";
    if (wasOn && mode !== "continuous") this.stopVoice();
    this.mode = mode;
  }

  async startVoice() {  // continuous: the microphone stays open, the server finds the turns
    this.mode = "continuous";
    await this.begin("continuous");
  }

  stopVoice() { this.end(); }

  async startRecording() {  // push-to-talk: pressed
    if (this.recording) return;
    if (this.player.speaking) this.player.stop();  // talking over the avatar stops it
    await this.begin("push_to_talk");
    this.serverState = "RECORDING";  // what the server answers to audio.start in this mode
  }

  stopRecording() { if (this.recording && this.mode === "pushToTalk") this.end(); }

  stopSpeaking() {
    this.player.stop();
    this.socket.sendFrame({ type: "cancel" });
    this.report();
  }

  async begin(mode) {
    await this.microphone.open();  // may throw: no permission, no device
    this.socket.sendFrame({ type: "audio.start", format: "pcm_s16le", sample_rate: 16000, mode });
    this.recording = true;
  }

  end() {
    if (!this.recording) return;
    this.recording = false;
    this.socket.sendFrame({ type: "audio.stop" });
    this.microphone.close();
    this.report();
  }

  report() { this.on.onState?.(this.state); }

  onFrame(frame) {
    if (frame.type === "state") {
      this.serverState = frame.state;
      // The user started speaking over the avatar: silence it at once.
      if (frame.state === "RECORDING" && this.player.speaking) this.player.stop();
      this.report();
    } else if (frame.type === "transcript.partial") {
      this.on.onPartial?.(frame.text);
    } else if (frame.type === "transcript.final") {
      this.on.onPartial?.("");
      this.socket.handlers = this.on.onTurn(frame.text);
    } else if (frame.type === "error") {
      this.on.onError?.(new ApiError(frame, 0, frame.retry_after));
    } else if (frame.type === "interrupted") {
      this.player.stop();
      this.on.onInterrupted?.(frame);
      this.report();
    }
  }

  close() {
    this.end();
    this.socket.onvoice = null;
  }
}
