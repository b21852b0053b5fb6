// @ts-check
// The inbox page: conversations across channels, their messages, replies and notes, and
// new messages live from /api/v1/engage/inbox/live. Signed in through the console: its
// bearer token (console/static/api.js keeps it in localStorage), or the session cookie.
const API = '/api/v1/engage';
const TOKEN_KEY = 'fm.token';
const list = /** @type {HTMLElement} */ (document.getElementById('list'));
const messages = /** @type {HTMLElement} */ (document.getElementById('messages'));
const form = /** @type {HTMLFormElement} */ (document.getElementById('reply'));
const text = /** @type {HTMLTextAreaElement} */ (document.getElementById('text'));
const mode = /** @type {HTMLSelectElement} */ (document.getElementById('mode'));
const resolve = /** @type {HTMLButtonElement} */ (document.getElementById('resolve'));
/** @type {number | null} */
let current = null;

/** @param {string} path @param {RequestInit} [init] */
async function api(path, init) {
  const token = localStorage.getItem(TOKEN_KEY);
  /** @type {Record<string, string>} */
  const headers = { ...(/** @type {Record<string, string>} */ (init && init.headers) || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(API + path, { credentials: 'same-origin', ...init, headers });
  if (r.status === 401) {
    location.href = '/console/';
    throw new Error('signed out');
  }
  const body = await r.json();
  if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
  return body;
}

async function loadList() {
  const convs = await api('/conversations?limit=100');
  if (!convs.length) {
    const p = document.createElement('p');
    p.className = 'empty';
    p.textContent = 'No conversations yet: e-mails, texts and website chats land here.';
    list.replaceChildren(p);
    return;
  }
  list.replaceChildren(
    ...convs.map((/** @type {any} */ c) => {
      const b = document.createElement('button');
      b.textContent = `${c.status} · ${c.last_channel || ''} · ${c.subject || c.visitor_email || 'conversation ' + c.id}`;
      if (c.sla_breached) b.textContent += ' · SLA!';
      b.setAttribute('aria-current', String(c.id === current));
      b.addEventListener('click', () => open(c.id));
      return b;
    }),
  );
}

/** @param {number} id */
async function open(id) {
  current = id;
  const d = await api(`/conversations/${id}`);
  const c = d.conversation;
  /** @type {HTMLElement[]} */
  const about = [];
  for (const [key, kind, label] of [['contact_id', 'contacts', 'Contact'], ['lead_id', 'leads', 'Lead']]) {
    if (c[key] === null) continue;
    const a = document.createElement('a');
    a.href = `/console/#/r/${kind}/${c[key]}`;
    a.textContent = `${label}: open the record`;
    const p = document.createElement('p');
    p.className = 'about';
    p.append(a);
    about.push(p);
  }
  messages.replaceChildren(
    ...about,
    ...d.messages.map((/** @type {any} */ m) => {
      const p = document.createElement('div');
      p.className = `msg ${m.direction}`;
      p.textContent = `[${m.channel}] ${m.body_text}`;
      return p;
    }),
  );
  messages.scrollTop = messages.scrollHeight;
  await loadList();
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (current === null || !text.value.trim()) return;
  const path = mode.value === 'note' ? `/conversations/${current}/notes` : `/conversations/${current}/replies`;
  const body = mode.value === 'note' ? { body: text.value } : { body: text.value, idempotency_key: crypto.randomUUID() };
  try {
    await api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    text.value = '';
    await open(current);
  } catch (e) {
    alert(String(e));
  }
});

resolve.addEventListener('click', async () => {
  if (current === null) return;
  await api(`/conversations/${current}`, {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ status: 'resolved' }),
  });
  await loadList();
});

function live() {
  const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + API + '/inbox/live');
  // the socket takes the console's token as its first message (a cookie signs in on the upgrade)
  ws.addEventListener('open', () => { const t = localStorage.getItem(TOKEN_KEY); if (t) ws.send(t); });
  ws.addEventListener('message', async (ev) => {
    const msg = JSON.parse(String(ev.data));
    if (msg.k === 'hello') { document.body.dataset.live = 'yes'; return; }
    if (msg.k !== 'message') return;
    if (msg.conversation_id === current) await open(current);
    else await loadList();
  });
  ws.addEventListener('close', () => { delete document.body.dataset.live; setTimeout(live, 3000); });
}

// a link to one conversation (a mention's notification: /engage/inbox/#conversation-12) opens it
const linked = /^#conversation-(\d+)$/.exec(location.hash);
loadList()
  .then(() => (linked ? open(Number(linked[1])) : undefined))
  .catch((/** @type {Error} */ e) => {
    const p = document.createElement('p');
    p.className = 'error';
    p.setAttribute('role', 'alert');
    p.textContent = e.message;
    messages.replaceChildren(p);
  })
  .then(live);

export {}; // a module: its names stay out of the global scope other pages share
