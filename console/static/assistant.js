// @ts-check
// The assistant panel: a button in the header opens a side panel where the user types a
// command or holds "Talk" (push-to-talk: the microphone's samples are kept as 16 kHz 16-bit
// PCM and sent as a WAV to POST /api/v1/assistant/voice; nothing leaves for a cloud service).
// Writes come back with a confirmation question: "Do it" sends the same words with
// confirm=true. Answers can be read aloud (POST /api/v1/assistant/speech, piper on the server).
import { api, q } from './api.js';
import { h } from './ui.js';

const RATE = 16000;
const MAX_SECONDS = 15; // the server takes 20 s; stop a little before

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
function recorder() {
  /** @type {AudioContext | null} */ let ctx = null;
  /** @type {MediaStream | null} */ let stream = null;
  /** @type {ScriptProcessorNode | null} */ let node = null;
  /** @type {Float32Array[]} */ let chunks = [];
  return {
    async start() {
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

const tz = () => Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

/** Mounts the header button and the panel. @param {HTMLElement} slot */
export function mountAssistant(slot) {
  document.head.append(h('link', { rel: 'stylesheet', href: '/console/assistant.css' }));
  const log = h('ol', { class: 'assistant-log', 'aria-live': 'polite', 'aria-label': 'Conversation' });
  const input = /** @type {HTMLInputElement} */ (h('input', { type: 'text', name: 'text', maxlength: '1000', autocomplete: 'off', placeholder: 'Ask or tell: "next stop", "pipeline in North this quarter"', 'aria-label': 'Command' }));
  const talk = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'assistant-talk', 'aria-pressed': 'false', title: 'Hold to talk (or press to start, again to stop)' }, 'Talk'));
  const speakBox = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', name: 'speak' }));
  const status = h('p', { class: 'assistant-status muted', role: 'status' });
  const form = h('form', { class: 'assistant-form' }, input, h('button', { type: 'submit' }, 'Send'), talk);
  const panel = h('aside', { id: 'assistant', class: 'assistant', hidden: true, 'aria-label': 'Assistant' },
    h('header', {}, h('strong', {}, 'Assistant'), h('label', { class: 'muted' }, speakBox, ' read answers aloud'),
      h('button', { type: 'button', class: 'assistant-close', 'aria-label': 'Close the assistant', onclick: () => { panel.hidden = true; } }, '×')),
    log, status, form);
  const open = h('button', { type: 'button', id: 'assistant-open', 'aria-controls': 'assistant', onclick: () => { panel.hidden = !panel.hidden; if (!panel.hidden) input.focus(); } }, 'Assistant');
  slot.append(open);
  document.body.append(panel);

  /** @param {'me'|'bot'|'error'} who @param {string} text @param {HTMLElement[]} [extra] */
  const say = (who, text, extra = []) => {
    const li = h('li', { class: `assistant-${who}` }, h('span', {}, text), ...extra);
    log.append(li);
    li.scrollIntoView({ block: 'end' });
    return li;
  };

  async function readAloud(text) {
    if (!speakBox.checked) return;
    try {
      const r = await api('/api/v1/assistant/speech', { method: 'POST', body: { text: text.slice(0, 600) }, raw: true });
      if (!r.ok) return;
      const url = URL.createObjectURL(await r.blob());
      const audio = new Audio(url);
      audio.onended = () => URL.revokeObjectURL(url);
      await audio.play();
    } catch { /* reading aloud is a nicety: the answer is on screen */ }
  }

  /** the previous answer's intent and slots, sent back for follow-ups ("and last quarter?") */
  let context = null;

  /** The device on screen (its alerts or its telemetry): "escalate this alert" means its
   * newest open alert. @returns {string | undefined} */
  function deviceOnScreen() {
    const m = /^#\/(?:alerts|device)\/([^/]+)/.exec(location.hash);
    return m ? decodeURIComponent(m[1]) : undefined;
  }

  /** @param {any} reply @param {string} text */
  function answer(reply, text) {
    if (reply.intent !== 'out_of_scope') {
      const slots = Object.fromEntries(Object.entries(reply.slots || {}).filter(([, v]) => typeof v === 'string' || typeof v === 'number'));
      context = reply.context || { intent: reply.intent, slots };
    }
    const extra = [];
    for (const link of reply.links || []) {
      const m = /^\/api\/v1\/(\w+)\/(\d+)$/.exec(link);
      const href = m ? `#/r/${m[1]}/${m[2]}` : link.replace(/^\/console\/?/, '');
      const kb = /#\/kb\/(\d+)$/.exec(link);
      extra.push(h('a', { href, class: 'assistant-link' }, m ? `${m[1].replace('_', ' ')} ${m[2]}` : kb ? `article ${kb[1]}` : 'open'));
    }
    const undoable = (reply.actions || []).find((a) => a.status === 'done' && a.undoable && a.action_id);
    if (undoable) {
      const undo = h('button', { type: 'button', class: 'assistant-undo' }, 'Undo');
      undo.addEventListener('click', async () => {
        undo.remove();
        try {
          await api(`/api/v1/assistant/actions/${undoable.action_id}/undo`, { method: 'POST' });
          say('bot', 'Undone.');
        } catch (err) {
          say('error', (err.data && err.data.error && err.data.error.message) || err.message);
        }
      });
      extra.push(undo);
    }
    if (reply.needs_confirmation) {
      const yes = h('button', { type: 'button', class: 'assistant-confirm' }, 'Do it');
      const no = h('button', { type: 'button' }, 'Cancel');
      yes.addEventListener('click', () => { yes.remove(); no.remove(); send(text, true); });
      no.addEventListener('click', () => { yes.remove(); no.remove(); say('bot', 'Cancelled; nothing was changed.'); });
      extra.push(yes, no);
    }
    const li = say('bot', reply.answer, extra);
    li.dataset.intent = reply.intent;
    readAloud(reply.answer);
    const nav = (reply.actions || []).find((a) => a.type === 'navigate' && a.href);
    if (nav && !reply.needs_confirmation) location.hash = nav.href.replace(/^\/console\/?/, '');
  }

  /** @param {string} text @param {boolean} [confirm] */
  async function send(text, confirm = false) {
    if (!confirm) say('me', text);
    status.textContent = 'Thinking…';
    try {
      answer(await api('/api/v1/assistant/messages', { method: 'POST', body: { text, tz: tz(), confirm, context, device_id: deviceOnScreen() } }), text);
      status.textContent = '';
    } catch (err) {
      status.textContent = '';
      say('error', (err.data && err.data.error && err.data.error.message) || err.message);
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    send(text);
  });

  const rec = recorder();
  let timer = 0;
  async function startTalk() {
    if (rec.active) return;
    try {
      await rec.start();
    } catch (err) {
      say('error', `The microphone is not available: ${err.message || err}`);
      return;
    }
    talk.setAttribute('aria-pressed', 'true');
    talk.textContent = 'Listening… release to send';
    timer = window.setTimeout(stopTalk, MAX_SECONDS * 1000);
  }
  async function stopTalk() {
    if (!rec.active) return;
    window.clearTimeout(timer);
    talk.setAttribute('aria-pressed', 'false');
    talk.textContent = 'Talk';
    const wav = await rec.stop();
    if (!wav) return;
    status.textContent = 'Recognising…';
    try {
      const reply = await api(`/api/v1/assistant/voice${q({ tz: tz(), context, device_id: deviceOnScreen() })}`, { method: 'POST', body: wav, headers: { 'Content-Type': 'audio/wav' } });
      status.textContent = '';
      if (reply.transcript) say('me', `🎤 ${reply.transcript}`);
      answer(reply, reply.transcript);
    } catch (err) {
      status.textContent = '';
      say('error', (err.data && err.data.error && err.data.error.message) || err.message);
    }
  }
  // hold to talk with a pointer; a press of Enter/Space starts, another stops
  talk.addEventListener('pointerdown', (e) => { e.preventDefault(); startTalk(); });
  talk.addEventListener('pointerup', () => { stopTalk(); });
  talk.addEventListener('pointerleave', () => { stopTalk(); });
  talk.addEventListener('keydown', (e) => {
    if (e.key !== ' ' && e.key !== 'Enter') return;
    e.preventDefault();
    if (e.repeat) return;
    if (rec.active) stopTalk(); else startTalk();
  });
}
