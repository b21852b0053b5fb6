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

/** @param {Float32Array[]} chunks @param {number} from */
function toPcm16(chunks, from) {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const all = new Float32Array(total);
  let at = 0;
  for (const c of chunks) { all.set(c, at); at += c.length; }
  const n = Math.floor((total * RATE) / from);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    const x = (i * from) / RATE;
    const i0 = Math.floor(x);
    const i1 = Math.min(i0 + 1, total - 1);
    const v = all[i0] + (all[i1] - all[i0]) * (x - i0);
    out[i] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
  }
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

/** Push-to-talk recorder: start() asks for the microphone, stop() gives the WAV. */
export function recorder() {
  /** @type {AudioContext | null} */ let ctx = null;
  /** @type {MediaStream | null} */ let stream = null;
  /** @type {ScriptProcessorNode | null} */ let node = null;
  /** @type {Float32Array[]} */ let chunks = [];
  return {
    async start() {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        throw Object.assign(new Error('this browser gives no microphone here (it needs https)'), { name: 'NotSupportedError' });
      }
      stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
      ctx = new AudioContext();
      const src = ctx.createMediaStreamSource(stream);
      node = ctx.createScriptProcessor(4096, 1, 1);
      chunks = [];
      node.onaudioprocess = (e) => { chunks.push(new Float32Array(e.inputBuffer.getChannelData(0))); };
      src.connect(node);
      node.connect(ctx.destination);
    },
    async stop() {
      if (!ctx) return null;
      const rate = ctx.sampleRate;
      node.disconnect();
      stream.getTracks().forEach((t) => t.stop());
      await ctx.close();
      ctx = null;
      const pcm = toPcm16(chunks, rate);
      chunks = [];
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
