// @ts-check
// The rep's assistant on the phone: one big push-to-talk button ("next stop", "check in",
// "done, replaced the seal", "start my route", "escalate this alert"). It records with the
// console panel's recorder (/console/voice.js), sends the WAV to the same endpoint
// (POST /api/v1/assistant/voice, the phone's token), shows what was heard and the answer, and
// reads the answer aloud with the server's offline voice. A write is asked first: "Yes"/"No"
// buttons, or hold again and say "yes" or "no" (the answer's context carries the pending
// question). Once something was done, `onChange` refreshes the day (the stop's state).
// Speech is recognised on the server: offline, the button says so instead of recording.
import { api, ApiError } from '/console/api.js';
import { h } from '/console/ui.js';
import { MAX_SECONDS, micProblem, readAloud, recorder, sendVoice, tz } from '/console/voice.js';

const READ_KEY = 'fm.rep.readAloud';
const IDLE = 'Hold to talk';
const OFFLINE = 'Talk needs the connection';

/** @param {{ onChange: () => void }} opts */
export function mountTalk({ onChange }) {
  const button = /** @type {HTMLButtonElement} */ (document.getElementById('talk'));
  const answerBox = document.getElementById('talk-answer');
  const read = /** @type {HTMLInputElement} */ (document.getElementById('talk-read'));
  if (!button || button.dataset.wired) return;
  button.dataset.wired = 'yes';
  read.checked = localStorage.getItem(READ_KEY) !== 'off';
  read.addEventListener('change', () => localStorage.setItem(READ_KEY, read.checked ? 'on' : 'off'));

  /** the previous answer's context: follow-ups, and the yes/no of a pending question */
  let context = null;
  const rec = recorder();
  let holding = false;
  let timer = 0;
  let startedAt = 0;

  /** @param {string} text @param {string} [kind] */
  function show(text, kind = 'answer') {
    answerBox.replaceChildren(h('p', { class: `talk-${kind}` }, text));
    answerBox.dataset.kind = kind;
  }

  function showNet() {
    const online = navigator.onLine;
    button.textContent = online ? IDLE : OFFLINE;
    button.setAttribute('aria-disabled', online ? 'false' : 'true');
    button.classList.toggle('offline', !online);
  }
  addEventListener('online', showNet);
  addEventListener('offline', showNet);
  showNet();

  /** @param {any} reply @param {string} heard */
  function answer(reply, heard) {
    if (reply.intent !== 'out_of_scope') {
      const slots = Object.fromEntries(Object.entries(reply.slots || {}).filter(([, v]) => typeof v === 'string' || typeof v === 'number'));
      context = reply.context || { intent: reply.intent, slots };
    }
    const kind = reply.needs_confirmation ? 'question' : 'answer';
    const confirmEls = [];
    if (reply.needs_confirmation) {
      const yes = h('button', { type: 'button', class: 'primary talk-yes' }, 'Yes, do it');
      const no = h('button', { type: 'button', class: 'talk-no' }, 'No');
      yes.addEventListener('click', () => confirmWith(heard));
      no.addEventListener('click', () => { context = null; show('Cancelled; nothing was changed.'); });
      confirmEls.push(h('div', { class: 'actions talk-confirm' }, yes, no), h('p', { class: 'muted' }, 'Or hold the button and say “yes” or “no”.'));
    }
    answerBox.replaceChildren(
      ...(heard ? [h('p', { class: 'muted talk-heard' }, `You said: “${heard}”`)] : []),
      h('p', { class: `talk-${kind}` }, reply.answer), ...confirmEls);
    answerBox.dataset.kind = kind;
    answerBox.dataset.intent = reply.intent;
    if (read.checked) readAloud(reply.answer);
    // what was said may have changed the day (a check-in, a closed visit, a started route)
    if (!reply.needs_confirmation && reply.intent !== 'out_of_scope') onChange();
  }

  /** "Yes, do it": the same words again, confirmed. @param {string} text */
  async function confirmWith(text) {
    show('Doing it…', 'busy');
    try {
      answer(await api('/api/v1/assistant/messages', { method: 'POST', body: { text, tz: tz(), confirm: true, context } }), '');
    } catch (err) { failed(err); }
  }

  /** @param {any} err */
  function failed(err) {
    if (!(err instanceof ApiError)) { show('Speech needs the connection, and the server did not answer. Try again when online; the buttons below work offline.', 'error'); return; }
    show(err.message, 'error');
  }

  async function startTalk() {
    if (holding || rec.active) return;
    if (!navigator.onLine) {
      show('Speech is recognised on the server, so it needs the connection. The buttons below work offline and are sent later.', 'error');
      return;
    }
    holding = true;
    try {
      await rec.start();
    } catch (err) {
      holding = false;
      show(`${micProblem(err)} The buttons below still work.`, 'error');
      document.body.dataset.mic = 'denied';
      return;
    }
    document.body.dataset.mic = 'on';
    startedAt = Date.now();
    button.setAttribute('aria-pressed', 'true');
    button.textContent = 'Listening… release to send';
    timer = window.setTimeout(stopTalk, MAX_SECONDS * 1000);
    if (!holding) stopTalk(); // released while the microphone was opening
  }

  async function stopTalk() {
    holding = false;
    if (!rec.active) return;
    window.clearTimeout(timer);
    button.setAttribute('aria-pressed', 'false');
    showNet();
    const wav = await rec.stop();
    if (!wav || Date.now() - startedAt < 400) { show('Hold the button down while you speak, then let go.', 'error'); return; }
    show('Recognising…', 'busy');
    try {
      const reply = await sendVoice(wav, { tz: tz(), context });
      answer(reply, reply.transcript);
    } catch (err) { failed(err); }
  }

  // hold with a finger or the mouse; with the keyboard, hold Space or Enter
  button.addEventListener('pointerdown', (e) => {
    e.preventDefault();
    try { button.setPointerCapture(e.pointerId); } catch { /* a synthetic press has no pointer to keep */ }
    startTalk();
  });
  button.addEventListener('pointerup', () => { stopTalk(); });
  button.addEventListener('pointercancel', () => { stopTalk(); });
  button.addEventListener('contextmenu', (e) => e.preventDefault());
  button.addEventListener('keydown', (e) => {
    if (e.key !== ' ' && e.key !== 'Enter') return;
    e.preventDefault();
    if (!e.repeat) startTalk();
  });
  button.addEventListener('keyup', (e) => {
    if (e.key !== ' ' && e.key !== 'Enter') return;
    e.preventDefault();
    stopTalk();
  });
  button.addEventListener('blur', () => { stopTalk(); });
}
