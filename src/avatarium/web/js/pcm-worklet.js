// Runs on the audio thread: microphone samples (Float32 at the context's rate) to 16 kHz
// 16-bit PCM, posted to the page in 40 ms buffers (640 samples). The page asks for a 16 kHz
// AudioContext, so the browser's own resampler usually does the work; where the context
// runs at another rate, samples are interpolated here.
const RATE = 16000;
const BLOCK = 640;

class Pcm16k extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / RATE;  // input samples per output sample
    this.t = 0;  // where the next output sample falls, in this block's input samples
    this.previous = 0;
    this.out = new Int16Array(BLOCK);
    this.n = 0;
  }

  push(value) {
    const clamped = Math.max(-1, Math.min(1, value));
    this.out[this.n++] = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
    if (this.n === BLOCK) {
      this.port.postMessage(this.out.buffer, [this.out.buffer]);
      this.out = new Int16Array(BLOCK);
      this.n = 0;
    }
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    if (this.step === 1) {
      for (let i = 0; i < input.length; i++) this.push(input[i]);
      return true;
    }
    // Linear interpolation; t may be in [-1, 0): between the last block's end and this one.
    while (this.t < input.length - 1) {
      const i = Math.floor(this.t);
      const fraction = this.t - i;
      const a = i < 0 ? this.previous : input[i];
      this.push(a + (input[i + 1] - a) * fraction);
      this.t += this.step;
    }
    this.t -= input.length;
    this.previous = input[input.length - 1];
    return true;
  }
}

registerProcessor("pcm16k", Pcm16k);
