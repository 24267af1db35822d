// The microphone: getUserMedia → ScriptProcessor → downsampled to the model's rate in JavaScript →
// the last window as a 16-bit WAV, sent about every second while it listens.

/** Downsample float32 `input` from `inRate` to `outRate` Hz: a box low-pass over each output
 *  sample's span of input samples (mean), so frequencies above the new Nyquist are attenuated. */
export function downsample(input, inRate, outRate) {
  if (inRate === outRate) return Float32Array.from(input);
  const ratio = inRate / outRate;
  const n = Math.floor(input.length / ratio);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = Math.floor(i * ratio);
    const b = Math.max(a + 1, Math.floor((i + 1) * ratio));
    let sum = 0;
    for (let j = a; j < b && j < input.length; j++) sum += input[j];
    out[i] = sum / (b - a);
  }
  return out;
}

/** A mono 16-bit PCM WAV file (ArrayBuffer) of float32 `samples` in [-1, 1] at `rate` Hz. */
export function wavBytes(samples, rate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const v = new DataView(buffer);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) v.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, 'RIFF'); v.setUint32(4, 36 + samples.length * 2, true); text(8, 'WAVE');
  text(12, 'fmt '); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
  text(36, 'data'); v.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    v.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return buffer;
}

export class Recorder {
  /** Calls `send(wav)` with the last `windowSeconds` of audio at `rate` Hz every `everySeconds`. */
  constructor(rate, windowSeconds, send, onError, everySeconds = 1.0) {
    this.rate = rate;
    this.size = Math.round(rate * windowSeconds);
    this.ring = new Float32Array(this.size);
    this.filled = 0;
    this.send = send;
    this.onError = onError;
    this.every = everySeconds;
    this.busy = false;
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false,
      noiseSuppression: false, autoGainControl: false, channelCount: 1 } });
    this.context = new AudioContext();
    this.inRate = this.context.sampleRate;
    const source = this.context.createMediaStreamSource(this.stream);
    this.node = this.context.createScriptProcessor(4096, 1, 1);
    this.node.onaudioprocess = (e) => this.push(e.inputBuffer.getChannelData(0));
    this.mute = this.context.createGain();
    this.mute.gain.value = 0;
    source.connect(this.node);
    this.node.connect(this.mute);
    this.mute.connect(this.context.destination);
    this.pending = new Float32Array(0);
    this.timer = setInterval(() => this.flush(), this.every * 1000);
  }

  push(block) {
    // keep a whole number of output samples' worth of input; carry the rest to the next block
    const joined = new Float32Array(this.pending.length + block.length);
    joined.set(this.pending);
    joined.set(block, this.pending.length);
    const ratio = this.inRate / this.rate;
    const usable = Math.floor(Math.floor(joined.length / ratio) * ratio);
    const out = downsample(joined.subarray(0, usable), this.inRate, this.rate);
    this.pending = joined.slice(usable);
    if (out.length >= this.size) {
      this.ring.set(out.subarray(out.length - this.size));
    } else {
      this.ring.copyWithin(0, out.length);
      this.ring.set(out, this.size - out.length);
    }
    this.filled = Math.min(this.size, this.filled + out.length);
  }

  async flush() {
    if (this.busy || this.filled < this.size) return;   // one request at a time, once a window is heard
    this.busy = true;
    try {
      await this.send(wavBytes(this.ring, this.rate));
    } catch (e) {
      this.onError(e);
    } finally {
      this.busy = false;
    }
  }

  stop() {
    clearInterval(this.timer);
    if (this.node) this.node.disconnect();
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    if (this.context) this.context.close();
  }
}
