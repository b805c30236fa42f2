// The microphone as 16 kHz mono 16-bit PCM, captured in an AudioWorklet. open() asks for
// permission; the page says "Listening…" only once it resolved (the microphone really open).

export class Microphone {
  constructor(onPcm) {
    this.onPcm = onPcm;
    this.stream = null;
    this.context = null;
  }

  get isOpen() { return Boolean(this.stream); }

  async open() {
    if (this.stream) return;
    const stream = await navigator.mediaDevices.getUserMedia({
      // The browser removes the avatar's own voice from what the microphone hears, so it
      // cannot interrupt itself.
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true,
               autoGainControl: true },
    });
    let context;
    try {
      context = new AudioContext({ sampleRate: 16000 });
    } catch {
      context = new AudioContext();  // the worklet resamples
    }
    try {
      await context.audioWorklet.addModule("/static/js/pcm-worklet.js");
      const node = new AudioWorkletNode(context, "pcm16k");
      node.port.onmessage = (event) => this.onPcm(event.data);
      const source = context.createMediaStreamSource(stream);
      // A worklet only runs while connected to the output: through a muted gain.
      const mute = context.createGain();
      mute.gain.value = 0;
      source.connect(node).connect(mute).connect(context.destination);
      if (context.state === "suspended") await context.resume();
    } catch (error) {
      stream.getTracks().forEach((track) => track.stop());
      context.close();
      throw error;
    }
    this.stream = stream;
    this.context = context;
  }

  close() {
    this.stream?.getTracks().forEach((track) => track.stop());
    this.context?.close();
    this.stream = null;
    this.context = null;
  }
}
