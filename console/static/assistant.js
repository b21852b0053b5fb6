// @ts-check
// The assistant panel: a button in the header opens a side panel where the user types a
// command or holds "Talk" (push-to-talk, voice.js: shared with the rep's phone; the recording
// goes to POST /api/v1/assistant/voice; nothing leaves for a cloud service).
// Writes come back with a confirmation question: "Do it" sends the same words with
// confirm=true (or the user says "yes"). Answers can be read aloud (POST
// /api/v1/assistant/speech, piper on the server).
import { api } from './api.js';
import { h } from './ui.js';
import { MAX_SECONDS, micProblem, readAloud as speak, recorder, sendVoice, tz } from './voice.js';

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
    h('header', {}, h('strong', {}, 'Assistant'), h('label', { class: 'muted inline' }, speakBox, ' read answers aloud'),
      h('button', { type: 'button', class: 'assistant-close', 'aria-label': 'Close the assistant', onclick: () => close() }, '×')),
    log, status, form);
  // an empty conversation says what to do with it
  const hint = () => h('li', { class: 'assistant-hint muted' }, 'Ask about your work or tell it what to do, in words: "next stop", "pipeline in North this quarter". It asks before it changes anything.');
  log.append(hint());
  const open = h('button', { type: 'button', id: 'assistant-open', 'aria-controls': 'assistant', 'aria-expanded': 'false', onclick: () => { if (panel.hidden) { panel.hidden = false; open.setAttribute('aria-expanded', 'true'); input.focus(); } else close(); } }, 'Assistant');
  // closed with its x, its header button or Escape; the focus goes back to the header button
  function close() { panel.hidden = true; open.setAttribute('aria-expanded', 'false'); open.focus(); }
  panel.addEventListener('keydown', (e) => { if (e.key === 'Escape') close(); });
  slot.append(open);
  document.body.append(panel);

  /** @param {'me'|'bot'|'error'} who @param {string} text @param {HTMLElement[]} [extra] */
  const say = (who, text, extra = []) => {
    const li = h('li', { class: `assistant-${who}` }, h('span', {}, text), ...extra);
    log.append(li);
    li.scrollIntoView({ block: 'end' });
    return li;
  };

  /** @param {string} text */
  function readAloud(text) {
    if (speakBox.checked) speak(text);
  }

  /** the previous answer's intent and slots, sent back for follow-ups ("and last quarter?") */
  let context = null;
  // signed out: the conversation was the previous user's (the next one may sit at this
  // browser); an answer still on its way is dropped
  let session = 0;
  document.addEventListener('fm-signed-out', () => {
    session += 1; context = null; log.replaceChildren(hint()); status.textContent = ''; input.value = '';
    if (!panel.hidden) { panel.hidden = true; open.setAttribute('aria-expanded', 'false'); }
  });

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
    const mine = session;
    try {
      const reply = await api('/api/v1/assistant/messages', { method: 'POST', body: { text, tz: tz(), confirm, context, device_id: deviceOnScreen() } });
      if (mine !== session) return;
      answer(reply, text);
      status.textContent = '';
    } catch (err) {
      if (mine !== session) return;
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
      say('error', micProblem(err));
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
    const mine = session;
    try {
      const reply = await sendVoice(wav, { tz: tz(), context, device_id: deviceOnScreen() });
      if (mine !== session) return;
      status.textContent = '';
      if (reply.transcript) say('me', `🎤 ${reply.transcript}`);
      answer(reply, reply.transcript);
    } catch (err) {
      if (mine !== session) return;
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
