// @ts-check
// The public booking page: free slots of the link's rep(s), grouped by day in the
// customer's own time zone; a chosen slot is booked with a name and e-mail. No login:
// the signed token in the page's URL is the only credential.
const token = location.pathname.split('/').filter(Boolean).pop() || '';
const api = `/api/v1/public/book/${encodeURIComponent(token)}`;

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** @type {string | null} */
let chosen = null;

/** @param {Response} r */
async function errorText(r) {
  try { const b = await r.json(); return (b.error && b.error.message) || `HTTP ${r.status}`; } catch { return `HTTP ${r.status}`; }
}

async function load() {
  const r = await fetch(api, { headers: { Accept: 'application/json' } });
  if (!r.ok) { $('intro').textContent = await errorText(r); return; }
  const page = await r.json();
  $('title').textContent = page.title;
  document.title = page.title;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  $('intro').textContent = page.slots.length
    ? `${page.duration_min} minutes. Times in your time zone (${zone}).`
    : 'No free times in the coming days.';
  /** @type {Map<string, any[]>} */
  const byDay = new Map();
  for (const s of page.slots) {
    const d = new Date(s.start).toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long' });
    if (!byDay.has(d)) byDay.set(d, []);
    /** @type {any[]} */ (byDay.get(d)).push(s);
  }
  const days = $('days');
  days.replaceChildren();
  for (const [d, slots] of byDay) {
    const box = document.createElement('section');
    box.className = 'day';
    const h = document.createElement('h2');
    h.textContent = d;
    box.append(h);
    for (const s of slots) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'slot';
      b.textContent = new Date(s.start).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      b.setAttribute('aria-pressed', 'false');
      b.addEventListener('click', () => {
        chosen = s.start;
        days.querySelectorAll('.slot').forEach((x) => x.setAttribute('aria-pressed', String(x === b)));
        $('chosen').textContent = `${d}, ${b.textContent}`;
        $('form').hidden = false;
      });
      box.append(b);
    }
    days.append(box);
  }
}

// What the customer is told beside a field the page or the API refuses: the API's own words
// name its pattern ("Expected `str` matching regex ..."), which says nothing to a customer.
const FIELD_WORDS = {
  name: 'Give your name.',
  email: 'Give your e-mail address, like name@example.com.',
  phone: 'A phone number has digits, spaces and + ( ) . - only, like +44 20 7946 0000.',
  note: 'The note may have 1,000 characters at most.',
};
const FIELDS = /** @type {(keyof FIELD_WORDS)[]} */ (Object.keys(FIELD_WORDS));
/** @param {string} name @param {string} text */
function markField(name, text) {
  $(`f-${name}-error`).textContent = text;
  $(`f-${name}`).setAttribute('aria-invalid', 'true');
}
function clearFields() {
  for (const name of FIELDS) { $(`f-${name}-error`).textContent = ''; $(`f-${name}`).removeAttribute('aria-invalid'); }
}

$('form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(/** @type {HTMLFormElement} */ (e.target));
  const result = $('result');
  result.textContent = '';
  clearFields();
  const text = (/** @type {string} */ n) => String(f.get(n) || '').trim();
  const missing = ['name', 'email'].filter((n) => !text(n));
  for (const n of missing) markField(n, FIELD_WORDS[n]);
  if (missing.length) { $(`f-${missing[0]}`).focus(); return; }
  const body = { start: chosen, name: text('name'), email: text('email'), note: f.get('note') || '' };
  const phone = text('phone');
  if (phone) Object.assign(body, { phone });
  const r = await fetch(api, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  if (r.status === 422) {
    const field = await r.clone().json().then((b) => b.error && b.error.field).catch(() => null);
    if (FIELDS.includes(field)) { markField(field, FIELD_WORDS[field]); $(`f-${field}`).focus(); return; }
  }
  if (r.ok) {
    const b = await r.json();
    result.className = '';
    result.textContent = `Booked: ${new Date(b.start).toLocaleString()} (reference ${b.reference}).`;
    $('form').hidden = true;
    load();
  } else {
    result.className = 'error';
    result.textContent = await errorText(r);
    if (r.status === 409) load();
  }
});

load();

export {}; // a module: its names stay out of the global scope other pages share
