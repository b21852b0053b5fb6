// @ts-check
// Small DOM helpers: element builder (text only, never innerHTML with data), toasts, errors.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let toastTimer;
/** @param {string} msg @param {string} [kind] */
export function toast(msg, kind = 'info') {
  const t = document.getElementById('toast');
  if (!t) return;
  t.textContent = msg;
  t.className = `show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.className = ''; }, 4000);
}

/** The parts to append or replace children with, the missing ones (null, undefined, false)
 * left out: the DOM's own append and replaceChildren would print them as "null". */
export const present = (...nodes) => nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false);

// A friendly block for an error: 403/404 are normal answers under record-level access.
export function errorBox(err) {
  const msg = err.status === 404 ? 'Not found, or not visible to you.'
    : err.status === 403 ? `Not allowed: ${err.message}`
      : err.message || String(err);
  return h('p', { class: 'error', role: 'alert' }, msg);
}

// Money without a currency of its own is in the tenant's default currency (GET
// /api/v1/tenant/settings, loaded at sign-in); USD only until that answer arrives.
let tenantCurrency = 'USD';
/** @param {string | null | undefined} code an ISO 4217 code */
export function setDefaultCurrency(code) { tenantCurrency = code || 'USD'; }
export const defaultCurrency = () => tenantCurrency;
/** @param {unknown} v @param {string} [cur] */
export const fmtMoney = (v, cur = tenantCurrency) => {
  const n = Number(v || 0);
  try { return n.toLocaleString(undefined, { style: 'currency', currency: cur, maximumFractionDigits: 0 }); } catch { return `${n.toFixed(0)} ${cur}`; }
};
// Times are shown in the signed-in user's time zone (users.timezone, from /auth/me), not
// the browser's; undefined (no zone on the account, or an unknown one) falls back to the
// browser's zone.
/** @type {string | undefined} */
let userZone;
/** @param {string | null | undefined} zone an IANA zone name */
export function setUserZone(zone) {
  userZone = undefined;
  if (!zone) return;
  try { new Intl.DateTimeFormat([], { timeZone: zone }); userZone = zone; } catch { /* unknown here: the browser's zone */ }
}
/** The zone times are shown in (the user's, else the browser's). */
export const zoneName = () => userZone || Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
/** Format an instant (ISO string, epoch ms or Date) in the user's zone.
 * @param {string | number | Date} t @param {Intl.DateTimeFormatOptions} [opts] */
export const fmtIn = (t, opts = {}) => new Date(t).toLocaleString([], { ...opts, timeZone: userZone });
export const fmtTime = (s) => (s ? fmtIn(s) : '');
/** Date.UTC for every year: Date.UTC reads a year from 0 to 99 as 1900 + year, so a time
 * typed in year 0026 would be sent as 1926 instead of being refused.
 * @param {number} y @param {number} m0 month from 0 @param {number} d @param {number} [hh] @param {number} [mm] @param {number} [ss] */
const utcMs = (y, m0, d, hh = 0, mm = 0, ss = 0) => {
  const t = new Date(0);
  t.setUTCFullYear(y, m0, d);
  t.setUTCHours(hh, mm, ss, 0);
  return t.getTime();
};
/** The years a link may name: those the API stores dates and times in (crm/entities.py
 * EARLIEST_DATE, LATEST_DATE); outside them no record can be, and the API refuses the bounds. */
const FIRST_YEAR = 1900;
const LAST_YEAR = 2200;
/** What is wrong with a year a link names, or null. @param {number} y */
const yearProblem = (y) => (y < FIRST_YEAR || y > LAST_YEAR ? `is outside the years ${FIRST_YEAR} to ${LAST_YEAR}` : null);
/** A calendar day a link names ('YYYY-MM-DD'), as [year, month, day], or what is wrong with
 * it (a string): a day that does not exist (2026-02-30) is refused, never rolled over into
 * the next month. @param {string} s @returns {[number, number, number] | string} */
export function readDay(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return 'is not a date (a day is written like 2026-03-31)';
  const [y, mo, d] = m.slice(1).map(Number);
  if (mo < 1 || mo > 12) return 'is not a date: months go from 01 to 12';
  const last = new Date(utcMs(y, mo, 0)).getUTCDate(); // day 0 of the next month
  if (d < 1 || d > last) return `is not a date: that month has days 01 to ${last}`;
  return yearProblem(y) || [y, mo, d];
}
/** A month a link names ('YYYY-MM') as [year, month], or what is wrong with it (a string).
 * @param {string} s @returns {[number, number] | string} */
export function readMonth(s) {
  const m = /^(\d{4})-(\d{2})$/.exec(s);
  if (!m) return 'is not a month (a month is written like 2026-03)';
  const [y, mo] = m.slice(1).map(Number);
  if (mo < 1 || mo > 12) return 'is not a month: months go from 01 to 12';
  return yearProblem(y) || [y, mo];
}
/** A year a link names ('YYYY'), or what is wrong with it (a string).
 * @param {string} s @returns {number | string} */
export function readYear(s) {
  if (!/^\d{4}$/.test(s)) return 'is not a year (a year is written like 2026)';
  return yearProblem(Number(s)) || Number(s);
}
/** An instant a link names (ISO 8601: '2026-03-31T14:05:00Z', as the API writes times), as
 * epoch ms, or what is wrong with it: a time that does not exist is refused, never rolled
 * over (Date.parse reads 2026-02-30 as 2 March, and "1" as the year 2001).
 * @param {string} s @returns {number | string} */
export function readInstant(s) {
  const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$/i.exec(s);
  const ms = m ? Date.parse(s) : NaN;
  if (!m || !Number.isFinite(ms)) return 'is not a time (a time is written like 2026-03-31T14:05:00Z)';
  const day = readDay(m[1]);
  if (typeof day === 'string') return day;
  if (Number(m[2]) > 23 || Number(m[3]) > 59 || Number(m[4] || 0) > 59) return 'is not a time of day';
  return ms;
}
/** A page whose address names a day, month or period it cannot show says so, instead of
 * showing another one, with a link to the page it can show.
 * @param {string} what what the address should have named ('day', 'month'...)
 * @param {string} value what it named @param {string} problem what is wrong with it
 * @param {string} href @param {string} label where to go instead */
export function badAddress(what, value, problem, href, label) {
  return h('div', { class: 'bad-address', role: 'alert', id: 'bad-address' },
    h('p', { class: 'error' }, `The ${what} in this page's address, "${value.length > 60 ? `${value.slice(0, 60)}…` : value}", ${problem}.`),
    h('p', {}, h('a', { class: 'button', href }, label)));
}
/** hh:mm of an instant in the user's zone. @param {string | number | Date} t */
export const fmtClock = (t) => fmtIn(t, { hour: '2-digit', minute: '2-digit' });
/** A calendar date, never shifted by a zone: 'YYYY-MM-DD' (optionally with a time that is
 * ignored) or a Date whose local year/month/day are the date.
 * @param {string | Date | null | undefined} s @param {Intl.DateTimeFormatOptions} [opts] */
export const fmtDate = (s, opts = {}) => {
  if (!s) return '';
  let y, m, d;
  const mt = typeof s === 'string' ? /^(\d{4})-(\d{2})-(\d{2})/.exec(s) : null;
  if (mt) [y, m, d] = [Number(mt[1]), Number(mt[2]) - 1, Number(mt[3])];
  else { const x = new Date(s); [y, m, d] = [x.getFullYear(), x.getMonth(), x.getDate()]; }
  return new Date(utcMs(y, m, d, 12)).toLocaleDateString([], { ...opts, timeZone: 'UTC' });
};
/** The user's calendar day ('YYYY-MM-DD') that an instant falls on. @param {string | number | Date} t */
export const userDay = (t) => {
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-CA', { timeZone: userZone, year: 'numeric', month: '2-digit', day: '2-digit' })
    .formatToParts(new Date(t)).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day}`;
};
/** An instant as the user's wall clock, 'YYYY-MM-DDTHH:MM' (a datetime-local value).
 * @param {string | number | Date} t */
export const wallClock = (t) => {
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-CA', { timeZone: userZone, hourCycle: 'h23', hour: '2-digit', minute: '2-digit' })
    .formatToParts(new Date(t)).map((x) => [x.type, x.value]));
  return `${userDay(t)}T${p.hour}:${p.minute}`;
};
/** A datetime-local value read as the user's wall clock, as an ISO instant. @param {string} s */
export const fromWallClock = (s) => {
  const m = /^(\d{4}-\d{2}-\d{2})(?:T(\d{2}):(\d{2}))?/.exec(s);
  return m ? new Date(zonedMs(m[1], Number(m[2] || 0), Number(m[3] || 0))).toISOString() : new Date(s).toISOString();
};
/** The instant (epoch ms) at which the given wall-clock time occurs in the user's zone.
 * @param {string} day 'YYYY-MM-DD' @param {number} [hour] @param {number} [minute] */
export const zonedMs = (day, hour = 0, minute = 0) => {
  const [y, m, d] = day.split('-').map(Number);
  const wall = utcMs(y, m - 1, d, hour, minute);
  const offsetAt = (ms) => {
    const p = Object.fromEntries(new Intl.DateTimeFormat('en-US', { timeZone: userZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' })
      .formatToParts(new Date(ms)).map((x) => [x.type, Number(x.value)]));
    return utcMs(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(ms / 1000) * 1000;
  };
  let t = wall - offsetAt(wall);
  t = wall - offsetAt(t); // twice: right across a DST change
  return t;
};

/** The console's inline field messages for a form built by hand (like fieldForm's): the form
 * is novalidate, so the browser's own bubbles (in its language, gone in a moment, and not
 * the words the rest of the console uses) never show. `field` puts an input (with its id)
 * under its label with its message slot (`ID-error`, the input's description); `mark` says
 * what is wrong beside it, marks it invalid and focuses it; `clear` wipes them all.
 * @param {HTMLFormElement} form */
export function fieldMessages(form) {
  form.noValidate = true;
  /** @type {Map<Element, HTMLElement>} */
  const slots = new Map();
  /** The message slot of an input placed by the caller. @param {Element} el */
  const slot = (el) => {
    const msg = h('span', { class: 'field-error', id: `${el.id}-error`, role: 'alert' });
    el.setAttribute('aria-describedby', msg.id);
    slots.set(el, msg);
    return msg;
  };
  /** @param {string} label @param {HTMLElement} el */
  const field = (label, el) => h('div', { class: 'form-field' }, h('label', { for: el.id }, label), el, slot(el));
  /** @param {Element} el @param {string} text */
  const mark = (el, text) => {
    const msg = slots.get(el);
    if (msg) msg.textContent = text;
    el.setAttribute('aria-invalid', 'true');
    /** @type {HTMLElement} */ (el).focus();
  };
  const clear = () => { for (const [el, msg] of slots) { msg.textContent = ''; el.removeAttribute('aria-invalid'); } };
  return { field, slot, mark, clear };
}

/** The one box a wide table (or a report's result) scrolls sideways in on a phone: a
 * labelled region a keyboard can focus and scroll (axe: scrollable-region-focusable).
 * @param {string} label what the region holds, read out by a screen reader
 * @param {Record<string, any>} [attrs] more attributes (an id, another class, dataset)
 * @param {...any} children */
export function scrollBox(label, attrs = {}, ...children) {
  const cls = ['table-box', attrs.class].filter(Boolean).join(' ');
  return h('div', { ...attrs, class: cls, role: 'region', 'aria-label': label, tabindex: 0 }, ...children);
}

export function table(columns, rows, onRow) {
  return h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.label)))),
    h('tbody', {}, rows.map((r) => {
      const tr = h('tr', {}, columns.map((c) => h('td', {}, c.render ? c.render(r) : (r[c.key] ?? ''))));
      if (onRow) {
        tr.tabIndex = 0;
        tr.classList.add('clickable');
        tr.addEventListener('click', () => onRow(r));
        tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') onRow(r); });
      }
      return tr;
    })));
}
