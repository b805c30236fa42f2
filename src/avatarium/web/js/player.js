// Speech playback on the Web Audio clock: chunks play back to back, in order, with no gaps
// (each starts exactly where the previous one ends), and the mouth follows each chunk's
// visemes against that same clock.

const MOUTH_OF = {
  sil: "rest", PP: "closed", FF: "teeth", TH: "tongue", DD: "narrow", kk: "narrow",
  CH: "narrow", SS: "narrow", nn: "narrow", RR: "round", aa: "open", E: "wide",
  ih: "wide", oh: "round", ou: "round",
};

export class SpeechPlayer {
  constructor({ onMouth, onSpeaking, onClock }) {
    this.onMouth = onMouth;
    this.onSpeaking = onSpeaking;
    this.onClock = onClock;
    this.context = null;
    this.endsAt = 0;
    this.scheduled = [];  // {start, end, visemes}
    this.order = Promise.resolve();
    this.speaking = false;
    this.frame = this.frame.bind(this);
  }

  // Call from a user gesture (a click or key press): browsers only start audio after one.
  unlock() {
    if (!this.context) this.context = new AudioContext();
    if (this.context.state === "suspended") this.context.resume();
  }

  // Fetch and decode at once (in parallel with earlier chunks), schedule in arrival order.
  enqueue(chunk) {
    this.unlock();
    const generation = this.generation || 0;
    const decoded = fetch(chunk.url)
      .then((response) => response.arrayBuffer())
      .then((bytes) => this.context.decodeAudioData(bytes));
    this.order = this.order.then(async () => {
      let buffer;
      try { buffer = await decoded; } catch { return; }  // a lost chunk: keep the rest going
      if (generation !== (this.generation || 0) || !this.context) return;  // stopped since
      const source = this.context.createBufferSource();
      source.buffer = buffer;
      source.connect(this.context.destination);
      const start = Math.max(this.context.currentTime + 0.05, this.endsAt);
      source.start(start);
      this.endsAt = start + buffer.duration;
      this.scheduled.push({ start, end: this.endsAt, visemes: chunk.visemes || [] });
      if (!this.speaking) { this.speaking = true; this.onSpeaking(true); requestAnimationFrame(this.frame); }
    });
  }

  frame() {
    if (!this.context) return;  // stopped
    const now = this.context.currentTime;
    this.onClock(now);
    this.scheduled = this.scheduled.filter((item) => item.end > now);
    const current = this.scheduled.find((item) => item.start <= now);
    let mouth = "rest";
    if (current) {
      const at = (now - current.start) * 1000;
      const viseme = current.visemes.find((v) => v.time_ms <= at && at < v.time_ms + v.duration_ms);
      if (viseme) mouth = MOUTH_OF[viseme.viseme] || "rest";
    }
    this.onMouth(mouth);
    if (this.scheduled.length) {
      requestAnimationFrame(this.frame);
    } else {
      this.speaking = false;
      this.onMouth("rest");
      this.onSpeaking(false);
    }
  }

  // Silence at once (the user spoke over the avatar, or asked it to stop).
  stop() {
    if (this.context) { this.context.close(); this.context = null; }
    this.scheduled = []; this.endsAt = 0; this.order = Promise.resolve();
    this.generation = (this.generation || 0) + 1;  // chunks still decoding are dropped
    if (this.speaking) {
      this.speaking = false;
      this.onMouth("rest");
      this.onSpeaking(false);
    }
  }
}

// With the "browser" speech provider the server sends text; the browser speaks it.
export function speakInBrowser(hint, onSpeaking) {
  if (!("speechSynthesis" in window)) return;
  const utterance = new SpeechSynthesisUtterance(hint.text);
  utterance.onstart = () => onSpeaking(true);
  utterance.onend = () => onSpeaking(false);
  utterance.onerror = () => onSpeaking(false);
  speechSynthesis.speak(utterance);
}
