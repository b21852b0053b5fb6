// @ts-check
// The global search box in the header: type to search every record type the API searches
// (typo-tolerant, ranked, only what the caller may open); ArrowDown/ArrowUp move through the
// hits, Enter opens one, Escape closes; "/" anywhere focuses the box.
import { api, q } from './api.js';
import { h } from './ui.js';

const TYPE = { accounts: 'Account', contacts: 'Contact', leads: 'Lead', opportunities: 'Deal', work_orders: 'Work order', devices: 'Device' };
const target = (hit) => (hit.type === 'devices' ? `#/device/${encodeURIComponent(hit.id)}` : `#/r/${hit.type}/${hit.id}`);

export function mountSearch(slot) {
  const box = /** @type {HTMLInputElement} */ (h('input', {
    id: 'search', type: 'search', placeholder: 'Search (/)', autocomplete: 'off', role: 'combobox', maxlength: 200,
    'aria-label': 'Search records', 'aria-expanded': 'false', 'aria-controls': 'search-results', 'aria-autocomplete': 'list',
  }));
  const list = h('ul', { id: 'search-results', role: 'listbox', 'aria-label': 'Search results', hidden: true });
  slot.append(h('div', { class: 'search' }, box, list));
  let hits = [];
  let active = -1;
  let seq = 0;
  let timer;
  const close = () => { list.hidden = true; box.setAttribute('aria-expanded', 'false'); box.removeAttribute('aria-activedescendant'); active = -1; };
  const mark = () => {
    [...list.children].forEach((li, i) => li.setAttribute('aria-selected', String(i === active)));
    if (active >= 0) box.setAttribute('aria-activedescendant', `search-hit-${active}`); else box.removeAttribute('aria-activedescendant');
  };
  const open = (i) => { const hit = hits[i]; if (!hit) return; close(); box.value = ''; location.hash = target(hit); };
  async function run() {
    const text = box.value.trim();
    const mine = ++seq;
    if (!text) { close(); return; }
    let r;
    try { r = await api(`/console/api/search${q({ q: text, limit: 5 })}`); } catch (e) {
      if (mine !== seq) return;
      // a refused or failed search says so, and Enter no longer opens the previous query's hit
      hits = []; active = -1;
      list.replaceChildren(h('li', { class: 'error', role: 'option', 'aria-disabled': 'true' }, `Search failed: ${e.message}`));
      list.hidden = false; box.setAttribute('aria-expanded', 'true'); mark();
      return;
    }
    if (mine !== seq) return; // a newer query is on its way
    hits = r.items.slice(0, 15);
    active = hits.length ? 0 : -1;
    list.replaceChildren(...(hits.length ? hits.map((hit, i) => h('li', { id: `search-hit-${i}`, role: 'option', dataset: { type: hit.type, id: hit.id }, onmousedown: (e) => { e.preventDefault(); open(i); } },
      h('span', { class: 'hit-type' }, TYPE[hit.type] || hit.type), ' ', h('strong', {}, hit.label), hit.detail ? h('span', { class: 'muted' }, ` ${hit.detail}`) : null))
      : [h('li', { class: 'muted', role: 'option', 'aria-disabled': 'true' }, `Nothing found for "${text}"`)]));
    list.hidden = false;
    box.setAttribute('aria-expanded', 'true');
    list.dataset.query = text;
    mark();
  }
  box.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(run, 150); });
  box.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' && hits.length) { e.preventDefault(); active = (active + 1) % hits.length; mark(); } else if (e.key === 'ArrowUp' && hits.length) { e.preventDefault(); active = (active - 1 + hits.length) % hits.length; mark(); } else if (e.key === 'Enter') { e.preventDefault(); if (active >= 0) open(active); } else if (e.key === 'Escape') { close(); }
  });
  box.addEventListener('blur', () => setTimeout(close, 150));
  // signed out: the hits (and a search on its way) were the previous user's
  document.addEventListener('fm-signed-out', () => { seq++; clearTimeout(timer); hits = []; box.value = ''; list.replaceChildren(); close(); });
  document.addEventListener('keydown', (e) => {
    const t = /** @type {HTMLElement} */ (e.target);
    if (e.key === '/' && !['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName) && !t.isContentEditable) { e.preventDefault(); box.focus(); }
  });
}
