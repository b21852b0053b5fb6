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

// A friendly block for an error: 403/404 are normal answers under record-level access.
export function errorBox(err) {
  const msg = err.status === 404 ? 'Not found, or not visible to you.'
    : err.status === 403 ? `Not allowed: ${err.message}`
      : err.message || String(err);
  return h('p', { class: 'error', role: 'alert' }, msg);
}

export const fmtMoney = (v, cur = 'USD') => {
  const n = Number(v || 0);
  try { return n.toLocaleString(undefined, { style: 'currency', currency: cur, maximumFractionDigits: 0 }); } catch { return `${n.toFixed(0)} ${cur}`; }
};
export const fmtTime = (s) => (s ? new Date(s).toLocaleString() : '');
export const fmtDate = (s) => (s ? new Date(s).toLocaleDateString() : '');

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
