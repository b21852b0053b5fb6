// @ts-check
// Fields of CRM records, driven by the API's own entity description (/api/v1/meta/entities):
// how a value reads (names for references, money in the record's currency, local times) and
// which input edits it. Nothing here prints an internal id or "null".
import { api, q } from './api.js';
import { h, fmtMoney, fmtTime, fmtDate, wallClock, fromWallClock } from './ui.js';

/** @type {Promise<any> | null} */
let metaPromise = null;
export function meta() {
  if (!metaPromise) metaPromise = api('/api/v1/meta/entities').catch((e) => { metaPromise = null; throw e; });
  return metaPromise;
}
export function resetMeta() { metaPromise = null; labelCache.clear(); }
export async function entityMeta(name) {
  const m = await meta();
  const e = m.items.find((x) => x.name === name);
  if (!e) throw new Error(`unknown record type ${name}`);
  return e;
}

// Readable names of referenced records, fetched in batches and cached per entity and id.
/** @type {Map<string, Promise<string | null>>} */
const labelCache = new Map();
export function labels(entity, ids) {
  const want = [...new Set(ids.filter((i) => i !== null && i !== undefined))];
  const missing = want.filter((i) => !labelCache.has(`${entity}:${i}`));
  if (missing.length) {
    const batch = api(`/api/v1/meta/labels${q({ entity, ids: missing.slice(0, 200).join(',') })}`)
      .then((r) => new Map(r.items.map((x) => [x.id, x.label])))
      .catch(() => new Map());
    for (const i of missing) labelCache.set(`${entity}:${i}`, batch.then((m) => m.get(Number(i)) ?? null));
  }
  return Promise.all(want.map((i) => labelCache.get(`${entity}:${i}`))).then((names) => new Map(want.map((i, k) => [Number(i), names[k]])));
}
export function rememberLabel(entity, id, label) { labelCache.set(`${entity}:${id}`, Promise.resolve(label)); }

// A reference rendered as a link with the record's name (filled in when known).
const PAGES = new Set(['accounts', 'contacts', 'leads', 'opportunities', 'activities', 'work_orders', 'users', 'territories']);
export function refLink(entity, id) {
  if (id === null || id === undefined) return h('span', { class: 'muted' }, '—');
  const el = PAGES.has(entity) ? h('a', { href: `#/r/${entity}/${id}` }, '…') : h('span', {}, '…');
  labels(entity, [id]).then((m) => { el.textContent = m.get(Number(id)) || 'not visible to you'; });
  return el;
}

export const human = (name) => name.replace(/_id$/, '').replace(/_min$/, ' (min)').replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase())
  .replace(/^Sla\b/, 'SLA').replace(/^Tz$/, 'Time zone').replace(/^Probability is override$/, 'Probability set by hand')
  .replace(/^Source ref$/, 'From')
  // accounts.health_score is the typed override of the computed health the lists show
  .replace(/^Health score$/, 'Health override');

const HIDDEN = new Set(['id', 'version', 'phone_normalized', 'conversion_mapping', 'assignment_rule_id']);
export const shown = (f) => !HIDDEN.has(f.name) && f.kind !== 'password' && f.kind !== 'multipolygon';
const MONEY = new Set(['amount', 'annual_revenue', 'estimated_amount']);

/** The value of field `f` of `row`, as something a person reads. */
export function display(f, row) {
  const v = row[f.name];
  if (v === null || v === undefined || v === '') return h('span', { class: 'muted' }, '—');
  if (f.ref) return refLink(f.ref, v);
  if (f.name === 'source_ref') return origin(String(v));
  if (MONEY.has(f.name)) return fmtMoney(v, row.currency || undefined);
  switch (f.kind) {
    case 'datetime': return fmtTime(v);
    case 'date': return fmtDate(`${v}T12:00:00`);
    case 'bool': return v ? 'yes' : 'no';
    case 'enum': return String(v).replace(/_/g, ' ');
    case 'decimal': return Number(v).toLocaleString();
    case 'text_list': case 'int_list': return v.length ? v.join(', ') : h('span', { class: 'muted' }, '—');
    case 'point': return `${v.coordinates[1].toFixed(5)}, ${v.coordinates[0].toFixed(5)}`;
    case 'object': case 'array': {
      const entries = Object.entries(v);
      if (!entries.length) return h('span', { class: 'muted' }, '—');
      return h('span', {}, entries.map(([k, x]) => `${human(k)}: ${typeof x === 'object' ? JSON.stringify(x) : x}`).join(' · '));
    }
    default: return String(v);
  }
}

// What a record came from, in words: the system's own keys ('alert:<uuid>', 'visit:<id>')
// name a source a person can open, never the key itself.
const ORIGINS = {
  alert: ['an equipment alert', '#/alerts'], visit: ['a site visit', null], booking: ['a calendar booking', null],
  run: ['an automated workflow', null], attachment: ['a photo from the field', null],
};
function origin(ref) {
  const [kind] = ref.split(':', 1);
  const known = ORIGINS[kind];
  if (!known || !ref.includes(':')) return ref;
  return known[1] ? h('a', { href: known[1] }, known[0]) : known[0];
}

// datetime inputs show and read the user's wall clock (their time zone)
const localInput = (iso) => wallClock(iso);

/** Whether a form can edit the field at all. */
export const editable = (f) => f.write && !['object', 'array', 'multipolygon', 'point'].includes(f.kind);

// Options of small reference lists (users, territories, pipelines, stages), loaded once.
const SMALL = new Set(['users', 'territories', 'pipelines', 'pipeline_stages', 'lead_assignment_rules']);
/** @type {Map<string, Promise<any[]>>} */
const smallLists = new Map();
function smallList(entity) {
  if (!smallLists.has(entity)) {
    smallLists.set(entity, api(`/api/v1/${entity}${q({ limit: 500 })}`).then((p) => p.items).catch(() => []));
  }
  return smallLists.get(entity);
}

// What a field says when its input holds what the browser could not read (same words as friendly's).
/** @type {Record<string, string>} */
const UNREADABLE = {
  int: 'must be a whole number',
  decimal: 'must be a number',
  datetime: 'must be a date and time, like 2026-03-31 14:30',
  date: 'must be a real date, like 2026-03-31',
  time: 'must be a time, like 14:30',
};

/**
 * An input for field `f` with the current value; `get()` answers the API value.
 * @returns {{el: HTMLElement, get: () => any, focus: () => void}}
 */
export function input(f, value, id) {
  const base = { id, name: f.name, 'aria-describedby': `${id}-error` };
  if (f.enum.length) {
    const sel = h('select', base, f.nullable ? h('option', { value: '' }, '—') : null,
      f.enum.map((v) => h('option', { value: v, selected: v === value }, v.replace(/_/g, ' '))));
    return { el: sel, get: () => sel.value || null, focus: () => sel.focus() };
  }
  if (f.ref && SMALL.has(f.ref)) {
    const sel = h('select', base, h('option', { value: '' }, '—'));
    smallList(f.ref).then((rows) => {
      for (const r of rows) sel.append(h('option', { value: r.id, selected: r.id === value }, r.name || r.email || String(r.id)));
    });
    if (value !== null && value !== undefined) sel.append(h('option', { value, selected: true }, '…'));
    smallList(f.ref).then(() => { const dup = [...sel.options].filter((o) => o.value === String(value)); if (dup.length > 1) dup[dup.length - 1].remove(); if (dup.length) dup[0].selected = true; });
    return { el: sel, get: () => (sel.value ? Number(sel.value) : null), focus: () => sel.focus() };
  }
  if (f.ref) return refPicker(f, value, id);
  if (f.kind === 'bool') {
    const cb = h('input', { ...base, type: 'checkbox', checked: !!value });
    return { el: cb, get: () => cb.checked, focus: () => cb.focus() };
  }
  if (f.kind === 'text' && (f.max_len || 0) > 1000) {
    const ta = h('textarea', { ...base, rows: 4, maxlength: f.max_len }, value ?? '');
    return { el: ta, get: () => (ta.value === '' ? null : ta.value), focus: () => ta.focus() };
  }
  const types = { int: 'number', decimal: 'number', datetime: 'datetime-local', date: 'date', time: 'time' };
  /** @type {Record<string, any>} */
  const attrs = { ...base, type: types[f.kind] || (f.name === 'email' ? 'email' : 'text') };
  if (f.kind === 'decimal') attrs.step = 'any';
  if (f.minimum !== null && (f.kind === 'int' || f.kind === 'decimal')) attrs.min = f.minimum;
  if (f.maximum !== null && (f.kind === 'int' || f.kind === 'decimal')) attrs.max = f.maximum;
  if (f.max_len) attrs.maxlength = f.max_len;
  if (f.name === 'timezone' || f.name === 'tz') attrs.list = zoneList(); // suggestions: the API takes IANA names only
  if (f.format === 'phone') attrs.type = 'tel';
  // the window of dates the API accepts (/meta/entities): the picker stays in it, and a
  // value typed outside is refused by the API with the rule shown beside the field
  if (f.earliest && f.kind === 'date') Object.assign(attrs, { min: f.earliest, max: f.latest });
  if (f.earliest && f.kind === 'datetime') Object.assign(attrs, { min: `${f.earliest}T00:00`, max: `${f.latest}T23:59` });
  let v = value ?? '';
  if (f.kind === 'datetime' && value) v = localInput(value);
  if (f.kind === 'time' && value) v = String(value).slice(0, 5);
  if (f.kind === 'text_list' || f.kind === 'int_list') v = (value || []).join(', ');
  const inp = /** @type {HTMLInputElement} */ (h('input', { ...attrs, value: v }));
  const get = () => {
    // what the browser cannot read (a number "12e", a date and time without its time) has
    // an empty value: say so on the field instead of sending nothing ("is required", or an
    // optional amount silently dropped)
    if (inp.validity.badInput) throw Object.assign(new Error(UNREADABLE[f.kind] || 'is not in the expected format'), { field: f.name });
    const s = inp.value.trim();
    if (f.kind === 'text_list') return s ? s.split(',').map((x) => x.trim()).filter(Boolean) : [];
    if (f.kind === 'int_list') return s ? s.split(',').map((x) => Number(x.trim())) : [];
    if (s === '') return f.kind === 'text' && !f.nullable ? '' : null;
    if (f.kind === 'int') return Number.isInteger(Number(s)) ? Number(s) : s;
    if (f.kind === 'decimal') return Number.isFinite(Number(s)) ? Number(s) : s;
    if (f.kind === 'datetime') return fromWallClock(s);
    if (f.kind === 'time') return s.length === 5 ? `${s}:00` : s;
    return inp.value;
  };
  return { el: inp, get, focus: () => inp.focus() };
}

// The browser's IANA time zone names, one shared datalist for every time zone field.
export function zoneList() {
  const id = 'fm-time-zones';
  if (!document.getElementById(id)) {
    const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
    document.body.append(h('datalist', { id }, ['UTC', ...zones].map((z) => h('option', { value: z }))));
  }
  return id;
}

// A search-as-you-type picker for references to large lists (accounts, contacts, ...).
function refPicker(f, value, id) {
  const list = h('datalist', { id: `${id}-options` });
  const inp = /** @type {HTMLInputElement} */ (h('input', { id, name: f.name, type: 'search', list: `${id}-options`, autocomplete: 'off', placeholder: `Search ${human(f.ref)}…`, 'aria-describedby': `${id}-error` }));
  let chosen = value ?? null;
  // ids are numbers, but a device's is its code (a text field)
  const idOf = (x) => (f.kind === 'text' ? String(x) : Number(x));
  /** @type {Map<string, number | string>} */
  const byLabel = new Map();
  if (chosen !== null && f.kind === 'text') { inp.value = String(chosen); byLabel.set(inp.value, chosen); }
  else if (chosen !== null) labels(f.ref, [chosen]).then((m) => { inp.value = m.get(Number(chosen)) || ''; byLabel.set(inp.value, chosen); });
  let timer;
  inp.addEventListener('input', () => {
    if (byLabel.has(inp.value)) { chosen = byLabel.get(inp.value); return; }
    chosen = inp.value ? undefined : null;
    clearTimeout(timer);
    if (!inp.value.trim()) { list.replaceChildren(); return; } // nothing to search (the API wants a query)
    timer = setTimeout(async () => {
      const r = await api(`/console/api/search${q({ q: inp.value, types: f.ref, limit: 10 })}`).catch(() => ({ items: [] }));
      list.replaceChildren(...r.items.map((x) => { byLabel.set(x.label, idOf(x.id)); return h('option', { value: x.label }, x.detail || ''); }));
      if (byLabel.has(inp.value)) chosen = byLabel.get(inp.value);
    }, 200);
  });
  inp.addEventListener('change', () => { if (byLabel.has(inp.value)) chosen = byLabel.get(inp.value); });
  const get = () => {
    if (chosen === undefined) throw Object.assign(new Error(`${human(f.name)}: pick one of the suggestions`), { field: f.name });
    return chosen;
  };
  return { el: h('span', { class: 'picker' }, inp, list), get, focus: () => inp.focus() };
}

// The API's validation message for one field, as a sentence for the person at the form.
export function friendly(message, field) {
  let m = String(message).replace(/^body /, '').replace(/^query /, '');
  if (field) m = m.replace(new RegExp(`^\\$?\\.?${field}:? `), '').replace(new RegExp(`^${field}: `), '');
  const num = (x) => Number(x).toLocaleString();
  return m
    .replace(/Expected `\w+` >= (\S+?)(?: - at `[^`]*`)?$/, (_, x) => `must be at least ${num(x)}`)
    .replace(/Expected `\w+` <= (\S+?)(?: - at `[^`]*`)?$/, (_, x) => `must be at most ${num(x)}`)
    .replace(/Expected `\w+` > (\S+?)(?: - at `[^`]*`)?$/, (_, x) => `must be more than ${num(x)}`)
    .replace(/Expected `\w+` < (\S+?)(?: - at `[^`]*`)?$/, (_, x) => `must be less than ${num(x)}`)
    .replace(/^Number out of range.*$/, 'is too large a number')
    .replace(/^Invalid RFC3339 encoded datetime.*$/, 'must be a date and time, like 2026-03-31 14:30')
    .replace(/^Invalid RFC3339 encoded date.*$/, 'must be a real date, like 2026-03-31')
    .replace(/^Expected `str` matching regex '\\\\S'.*$/, 'must not be blank')
    .replace(/^Expected `str` matching regex '\^\[\^@\]\*@'.*$/, 'must be an e-mail address (name@domain)')
    .replace(/^Expected `str` matching regex '\^\[A-Z\]\{3\}\$'.*$/, 'must be a three-letter currency code in capitals, like EUR')
    .replace(/^Expected `str` matching regex .*$/, 'is not in the expected format')
    .replace(/Expected `str` of length <= (\d+).*$/, 'must have at most $1 characters')
    .replace(/Expected `str` of length >= (\d+).*$/, 'must not be empty')
    .replace(/^Expected `\w+`, got `null`.*$/, 'is required')
    .replace(/^Object missing required field.*$/, 'is required')
    .replace(/Expected `int`.*$/, 'must be a whole number')
    .replace(/Expected `(float|decimal)`.*$/, 'must be a number')
    .replace(/Invalid enum value '([^']*)'.*$/, '"$1" is not one of the choices');
}
