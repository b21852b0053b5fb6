// @ts-check
// Push-to-talk shared by the console's assistant panel (assistant.js) and the rep's phone
// (rep/talk.js): the microphone's samples are kept as 16 kHz 16-bit PCM and sent as a WAV to
// POST /api/v1/assistant/voice (recognised offline on the server; nothing leaves for a
// cloud service); answers are read aloud by POST /api/v1/assistant/speech (piper, also on
// the server).
import { api, q } from './api.js';
import { zoneName } from './ui.js';

export const RATE = 16000;
export const MAX_SECONDS = 15; // the server takes 20 s; stop a little before

/** `x`, sampled at `from` Hz, at RATE Hz: windowed-sinc interpolation whose cut-off lies
 * below the new Nyquist frequency, so what a microphone hears above 8 kHz (the hiss of an
 * "s") does not fold back into the speech band as straight interpolation let it.
 * @param {Float32Array} x @param {number} from */
export function resample(x, from) {
  if (from === RATE) return x;
  const step = from / RATE; // input samples per output sample
  const cut = Math.min(1, 1 / step) * 0.9; // of the input's Nyquist; the rest is the filter's slope
  const half = Math.ceil(8 / cut); // eight zero crossings each side
  const n = Math.floor(x.length / step);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const at = i * step;
    const lo = Math.max(0, Math.floor(at) - half + 1);
    const hi = Math.min(x.length - 1, Math.floor(at) + half);
    let sum = 0;
    let weight = 0;
    for (let k = lo; k <= hi; k++) {
      const t = at - k;
      const a = Math.PI * cut * t;
      const w = (a === 0 ? 1 : Math.sin(a) / a) * (0.5 + 0.5 * Math.cos((Math.PI * t) / half));
      sum += x[k] * w;
      weight += w;
    }
    out[i] = weight ? sum / weight : 0; // normalised: unit gain at the edges too
  }
  return out;
}

/** 16-bit PCM of samples in [-1, 1]. @param {Float32Array} x */
export function pcm16(x) {
  const out = new Int16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round(x[i] * 32767)));
  return out;
}

/** A mono 16-bit PCM WAV file. @param {Int16Array} pcm */
export function wavBlob(pcm) {
  const buf = new ArrayBuffer(44 + pcm.length * 2);
  const v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, 'RIFF'); v.setUint32(4, 36 + pcm.length * 2, true); str(8, 'WAVE');
  str(12, 'fmt '); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, RATE, true); v.setUint32(28, RATE * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
  str(36, 'data'); v.setUint32(40, pcm.length * 2, true);
  new Int16Array(buf, 44).set(pcm);
  return new Blob([buf], { type: 'audio/wav' });
}

/** Push-to-talk recorder: start() asks for the microphone, stop() gives the WAV. The
 * samples are taken on the audio thread (capture-worklet.js), so a busy page loses none. */
export function recorder() {
  /** @type {AudioContext | null} */ let ctx = null;
  /** @type {MediaStream | null} */ let stream = null;
  /** @type {AudioWorkletNode | null} */ let node = null;
  /** @type {Float32Array[]} */ let chunks = [];
  return {
    async start() {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        throw Object.assign(new Error('this browser gives no microphone here (it needs https)'), { name: 'NotSupportedError' });
      }
      const mic = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
      // set up in locals: the recorder is active only once it can record
      const c = new AudioContext();
      let n;
      try {
        await c.audioWorklet.addModule(new URL('./capture-worklet.js', import.meta.url));
        n = new AudioWorkletNode(c, 'fieldmesh-capture', { channelCount: 1, channelCountMode: 'explicit' });
      } catch (err) {
        mic.getTracks().forEach((t) => t.stop());
        await c.close();
        throw err;
      }
      const got = [];
      n.port.onmessage = (e) => { if (e.data instanceof Float32Array) got.push(e.data); };
      c.createMediaStreamSource(mic).connect(n);
      n.connect(c.destination); // silent (the worklet writes no output), but pulled by every browser
      stream = mic;
      ctx = c;
      node = n;
      chunks = got;
    },
    async stop() {
      if (!ctx) return null;
      // taken over at once: a new recording may start while this one is wrapped up
      const c = ctx, n = node, mic = stream, got = chunks;
      ctx = null; node = null; stream = null; chunks = [];
      const rate = c.sampleRate;
      // what the worklet still holds, then nothing more
      const flushed = new Promise((resolve) => {
        n.port.addEventListener('message', (e) => { if (e.data === 'done') resolve(undefined); });
        setTimeout(resolve, 500); // a context that has stopped answers no more
      });
      n.port.postMessage('flush');
      await flushed;
      mic.getTracks().forEach((t) => t.stop());
      n.port.onmessage = null;
      n.disconnect();
      await c.close();
      const all = new Float32Array(got.reduce((k, x) => k + x.length, 0));
      let at = 0;
      for (const x of got) { all.set(x, at); at += x.length; }
      const pcm = pcm16(resample(all, rate));
      return pcm.length ? wavBlob(pcm) : null;
    },
    get active() { return ctx !== null; },
  };
}

/** What to tell the user when the microphone cannot be used. @param {any} err */
export function micProblem(err) {
  const name = (err && err.name) || '';
  if (name === 'NotAllowedError' || name === 'SecurityError') {
    return 'The microphone is blocked for this site. Allow it in the browser\'s site settings (the lock or camera icon beside the address), then try again.';
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'No microphone was found on this device.';
  if (name === 'NotReadableError') return 'The microphone is in use by another app; close it and try again.';
  return `The microphone is not available: ${(err && err.message) || err}`;
}

/** The user's time zone (else the browser's), sent with every command. */
export const tz = () => zoneName();

/** Send a recording; the answer as POST /api/v1/assistant/voice gives it.
 * @param {Blob} wav @param {Record<string, any>} query */
export function sendVoice(wav, query) {
  return api(`/api/v1/assistant/voice${q(query)}`, { method: 'POST', body: wav, headers: { 'Content-Type': 'audio/wav' } });
}

/** Read an answer aloud with the server's offline voice; resolves once it has played (or
 * could not: the answer is on screen anyway). @param {string} text */
export async function readAloud(text) {
  try {
    const r = await api('/api/v1/assistant/speech', { method: 'POST', body: { text: text.slice(0, 600) }, raw: true });
    if (!r.ok) return false;
    const url = URL.createObjectURL(await r.blob());
    const audio = new Audio(url);
    await new Promise((resolve) => {
      audio.onended = resolve; audio.onerror = resolve;
      audio.play().catch(resolve);
    });
    URL.revokeObjectURL(url);
    return true;
  } catch { return false; /* reading aloud is a nicety: the answer is on screen */ }
}
