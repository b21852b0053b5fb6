// @ts-check
// Record pages of every CRM entity: a list with filters and "New", a create form, and the
// record page (fields edited in place with the API's errors shown on the field, delete with
// confirmation, related lists, timeline, audit history). Buttons the caller's role cannot use
// are not offered (the API's /meta/entities says which); record-level refusals show inline.
import { api, listAll, q, etagOf, download } from './api.js';
import { h, toast, errorBox, table, fmtTime } from './ui.js';
import { entityMeta, display, input, editable, shown, human, labels, refLink, rememberLabel, friendly } from './fields.js';

/** @typedef {{title: string, columns: string[], filters?: string[], related?: (row: any, m: any) => HTMLElement[]}} Screen */

// The label of a record of each entity, as the list and the page header show it.
export const titleOf = (entity, r) => {
  switch (entity) {
    case 'contacts': return [r.first_name, r.last_name].filter(Boolean).join(' ') || r.company_name || r.email || 'Unnamed contact';
    case 'leads': return [r.first_name, r.last_name].filter(Boolean).join(' ') || r.company || r.email || 'Unnamed lead';
    case 'activities': return r.subject;
    case 'work_orders': return r.title;
    case 'assets': return [r.equipment_model, r.serial].filter(Boolean).join(' · ');
    default: return r.name || r.email || `${entity}`;
  }
};

/** @type {Record<string, Screen>} */
export const SCREENS = {
  accounts: { title: 'Accounts', columns: ['name', 'type', 'annual_revenue', 'owner_id', 'last_visit_at'], filters: ['type'] },
  contacts: { title: 'Contacts', columns: ['first_name', 'last_name', 'company_name', 'title', 'email', 'phone', 'owner_id'], filters: ['kind'] },
  leads: { title: 'Leads', columns: ['first_name', 'last_name', 'company', 'source', 'status', 'owner_id', 'region'], filters: ['source', 'status'] },
  opportunities: { title: 'Opportunities', columns: ['name', 'account_id', 'amount', 'stage_id', 'status', 'close_date', 'owner_id'], filters: ['status'] },
  activities: { title: 'Activities', columns: ['occurred_at', 'type', 'subject', 'status', 'account_id', 'owner_id'], filters: ['type', 'status'] },
  work_orders: { title: 'Work orders', columns: ['title', 'account_id', 'priority', 'status', 'sla_due_at', 'assignee_id'], filters: ['status', 'priority'] },
  users: { title: 'Users', columns: ['name', 'email', 'role', 'territory_id', 'active'], filters: ['role'] },
  territories: { title: 'Territories', columns: ['name', 'region'] },
};

// Choices the API takes in a plain edit: a lead becomes "converted" only through the
// conversion wizard (the API refuses the status otherwise), so no form offers it.
const SET_ONLY_BY_ACTION = { leads: { status: ['converted'] } };
/** The field as a form edits it for `entity`. */
export const forEdit = (entity, f) => {
  const drop = (SET_ONLY_BY_ACTION[entity] || {})[f.name];
  return drop ? { ...f, enum: f.enum.filter((v) => !drop.includes(v)) } : f;
};

const cell = (m, name) => {
  const f = m.fields.find((x) => x.name === name);
  return { label: human(name), render: (r) => display(f, r) };
};

// Model scores beside the records (GET /api/v1/insights/scores: a page's ids at once), with
// the model version in the cell's title; a dash when the record is not scored (yet).
const pctOf = (s) => `${Math.round(s.probability != null ? s.probability * 100 : s.score)} %`;
// `column`: its name in a list export's columns (the export writes the same number).
/** @type {Record<string, {label: string, model: string, column: string, text: (s: any, r: any) => string}[]>} */
export const SCORE_COLUMNS = {
  leads: [{ label: 'Score', model: 'lead-score', column: 'score', text: (s) => String(s.score) }],
  opportunities: [{ label: 'Win %', model: 'opportunity-win', column: 'win_pct', text: pctOf }],
  accounts: [
    { label: 'Churn risk', model: 'account-churn', column: 'churn_risk', text: pctOf },
    // computed; a typed value (the manual override, in force) is shown beside it
    { label: 'Health', model: 'account-health', column: 'health', text: (s, r) => (r.health_score != null ? `${s.score} (set: ${r.health_score})` : String(s.score)) },
  ],
};

/** The scores of these records by id, as GET /api/v1/insights/scores answers them. */
async function scoresOf(entity, ids) {
  if (!SCORE_COLUMNS[entity] || !ids.length) return new Map();
  try {
    const r = await api(`/api/v1/insights/scores${q({ entity, ids: ids.join(',') })}`);
    return new Map(r.items.map((x) => [x.id, x.scores]));
  } catch { return new Map(); } // the list stands without its scores
}

const scoreCell = (c, scores) => ({
  label: c.label,
  render: (r) => {
    const s = (scores.get(r.id) || {})[c.model];
    if (!s && c.model === 'account-health' && r.health_score != null) return h('span', { dataset: { score: c.model }, title: 'Not computed yet; the typed value' }, `set: ${r.health_score}`);
    if (!s) return h('span', { class: 'muted', dataset: { score: c.model }, title: 'Not scored' }, '—');
    return h('span', { dataset: { score: c.model, version: s.model_version }, title: `${c.label} by ${c.model} version ${s.model_version}` }, c.text(s, r));
  },
});

// ---------------------------------------------------------------------------- list

export async function listView(root, entity) {
  const m = await entityMeta(entity);
  const screen = SCREENS[entity];
  const newBtn = m.may_create ? h('a', { class: 'button primary', href: `#/new/${entity}`, id: 'new-record' }, `New ${human(m.singular).toLowerCase()}`) : null;
  const filters = (screen.filters || []).map((n) => m.fields.find((f) => f.name === n));
  const sortable = m.fields.filter((f) => f.sortable);
  const search = /** @type {HTMLInputElement} */ (h('input', { name: 'q', type: 'search', id: 'list-q', maxlength: 200 }));
  const sortSel = /** @type {HTMLSelectElement} */ (h('select', { name: 'sort', id: 'list-sort' }, h('option', { value: '' }, 'default'),
    sortable.flatMap((f) => [h('option', { value: f.name }, `${human(f.name)} ↑`), h('option', { value: `-${f.name}` }, `${human(f.name)} ↓`)])));
  const form = h('form', { class: 'filters', role: 'search' },
    m.searchable ? h('label', {}, 'Search', search) : null,
    filters.map((f) => h('label', {}, human(f.name), h('select', { name: f.name }, h('option', { value: '' }, 'any'),
      f.enum.map((v) => h('option', { value: v }, v.replace(/_/g, ' ')))))),
    h('label', {}, 'Sort', sortSel),
    h('button', { type: 'submit' }, 'Apply'));
  // columns: the screen's by default, any readable field on demand
  let cols = [...screen.columns];
  const colPicker = h('details', { class: 'col-picker' }, h('summary', {}, 'Columns'),
    m.fields.filter((f) => shown(f) && f.kind !== 'object' && f.kind !== 'array').map((f) => {
      const cb = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', value: f.name, checked: cols.includes(f.name) }));
      cb.addEventListener('change', () => { cols = cb.checked ? [...cols, f.name] : cols.filter((c) => c !== f.name); load(true); });
      return h('label', { class: 'inline' }, cb, human(f.name));
    }));
  // saved views (GET/POST /api/v1/views): search, filters, sort and columns under a name
  const viewSel = /** @type {HTMLSelectElement} */ (h('select', { id: 'view-select', 'aria-label': 'Saved views' }, h('option', { value: '' }, 'Saved views')));
  const viewName = /** @type {HTMLInputElement} */ (h('input', { id: 'view-name', 'aria-label': 'View name', placeholder: 'View name', maxlength: 200, 'aria-describedby': 'view-name-error' }));
  const viewErr = h('span', { class: 'field-error', id: 'view-name-error', role: 'alert' });
  const saveView = h('button', { type: 'button', id: 'view-save' }, 'Save view');
  let views = [];
  async function loadViews() {
    try { views = (await api(`/api/v1/views${q({ entity })}`)).items; } catch { views = []; }
    viewSel.replaceChildren(h('option', { value: '' }, 'Saved views'), ...views.map((v) => h('option', { value: v.id }, v.name)));
  }
  // bulk actions on the ticked rows: assign an owner, set a status
  const selected = new Set();
  const bulkCount = h('span', { id: 'bulk-count' }, '0 selected');
  const ownerField = m.fields.find((f) => f.name === (entity === 'work_orders' ? 'assignee_id' : 'owner_id'));
  const statusField = m.fields.find((f) => f.name === 'status' && f.write);
  const bulkOwner = ownerField ? input(ownerField, null, 'bulk-owner') : null;
  const bulkStatus = statusField ? input({ ...forEdit(entity, statusField), nullable: true }, null, 'bulk-status') : null;
  const bulkGo = h('button', { type: 'button', id: 'bulk-apply', class: 'primary' }, 'Apply to selected');
  const bulk = m.may_update && (bulkOwner || bulkStatus) ? h('div', { class: 'toolbar bulk', id: 'bulk' }, bulkCount,
    bulkOwner ? h('label', { for: 'bulk-owner' }, `Assign ${human(ownerField.name).toLowerCase()}`, bulkOwner.el) : null,
    bulkStatus ? h('label', { for: 'bulk-status' }, 'Set status', bulkStatus.el) : null, bulkGo) : null;
  const out = h('div', { id: 'list' });
  const count = h('span', { class: 'muted', id: 'list-count' });
  const more = h('button', { type: 'button', hidden: true }, 'More');
  // exports of what the list shows: its search, filters, sort and columns, every row
  const exportErr = h('span', { class: 'field-error', id: 'export-error', role: 'alert' });
  const exportAs = (ext) => h('button', { type: 'button', id: `export-${ext}`, onclick: async (e) => {
    const btn = /** @type {HTMLButtonElement} */ (e.currentTarget);
    btn.disabled = true; exportErr.textContent = '';
    try {
      const flat = (f) => !['password', 'point', 'multipolygon', 'object', 'array'].includes(f.kind) && f.name !== 'version';
      // the shown fields, then the score columns the list shows after them
      const columns = [...cols.filter((c) => m.fields.some((f) => f.name === c && flat(f))),
        ...(SCORE_COLUMNS[entity] || []).map((c) => c.column)].join(',');
      await download(`/api/v1/list_exports/${entity}.${ext}${q({ ...params, columns: columns || undefined })}`, null, `${entity}.${ext}`);
    } catch (ex) { exportErr.textContent = ex.message; } finally { btn.disabled = false; }
  } }, `Export ${ext.toUpperCase()}`);
  root.append(h('div', { class: 'toolbar' }, h('h1', {}, screen.title), count, newBtn),
    form, h('div', { class: 'toolbar' }, viewSel, viewName, saveView, viewErr, colPicker, exportAs('xlsx'), exportAs('csv'), exportAs('pdf'), exportErr), bulk || '', out, more); // append(null) would print "null"
  let cursor = null;
  let params = {};
  let rows = [];
  const scores = new Map();
  function grid() {
    const columns = [...cols.map((n) => cell(m, n)), ...(SCORE_COLUMNS[entity] || []).map((c) => scoreCell(c, scores))];
    const all = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', 'aria-label': 'Select all shown' }));
    all.addEventListener('change', () => { for (const r of rows) { if (all.checked) selected.add(r.id); else selected.delete(r.id); } out.replaceChildren(grid()); sync(); });
    const t = h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, bulk ? h('th', { scope: 'col' }, all) : null, columns.map((c) => h('th', { scope: 'col' }, c.label)))),
      h('tbody', {}, rows.map((r) => {
        const open = () => { location.hash = `#/r/${entity}/${r.id}`; };
        const tick = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', checked: selected.has(r.id), 'aria-label': `Select ${titleOf(entity, r)}`, dataset: { id: r.id } }));
        tick.addEventListener('click', (e) => e.stopPropagation());
        tick.addEventListener('change', () => { if (tick.checked) selected.add(r.id); else selected.delete(r.id); sync(); });
        const tr = h('tr', { class: 'clickable', tabindex: 0, dataset: { id: r.id } }, bulk ? h('td', {}, tick) : null, columns.map((c) => h('td', {}, c.render(r))));
        tr.addEventListener('click', open);
        tr.addEventListener('keydown', (e) => { if (e.key === 'Enter' && e.target === tr) open(); });
        return tr;
      })));
    return t;
  }
  const sync = () => { bulkCount.textContent = `${selected.size} selected`; };
  async function load(reset) {
    if (reset) { cursor = null; rows = []; }
    try {
      const page = await api(`/api/v1/${entity}${q({ ...params, limit: 50, cursor, total: reset ? 'true' : undefined })}`);
      for (const [id, sc] of await scoresOf(entity, page.items.map((r) => r.id))) scores.set(id, sc);
      if (reset) count.textContent = `${page.total} ${page.total === 1 ? 'record' : 'records'}`;
      rows = reset ? page.items : [...rows, ...page.items];
      if (!rows.length) {
        out.replaceChildren(h('p', { class: 'empty' }, params.q || params.filter ? 'Nothing matches: change the search or the filters.'
          : m.may_create ? `No ${screen.title.toLowerCase()} yet: create the first with "New".` : `No ${screen.title.toLowerCase()} visible to you yet.`));
      } else out.replaceChildren(grid());
      cursor = page.next_cursor;
      more.hidden = !cursor;
      out.dataset.query = q(params); // what the rows shown answer
    } catch (e) { out.replaceChildren(e.field ? h('p', { class: 'error', role: 'alert' }, `${human(e.field === 'q' ? 'search' : e.field)}: ${friendly(e.message, e.field)}`) : errorBox(e)); }
  }
  const readForm = () => {
    const fd = new FormData(form);
    const and = filters.filter((f) => fd.get(f.name)).map((f) => ({ field: f.name, op: 'eq', value: fd.get(f.name) }));
    params = { q: fd.get('q') || undefined, filter: and.length ? { and } : undefined, sort: sortSel.value || undefined };
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); readForm(); load(true); });
  more.addEventListener('click', () => load(false));
  viewSel.addEventListener('change', () => {
    const v = views.find((x) => String(x.id) === viewSel.value);
    if (!v) return;
    search.value = v.params.q || '';
    sortSel.value = v.params.sort || '';
    for (const f of filters) {
      const c = ((v.params.filter && v.params.filter.and) || []).find((x) => x.field === f.name);
      /** @type {HTMLSelectElement} */ (form.querySelector(`select[name=${f.name}]`)).value = c ? c.value : '';
    }
    if (v.params.columns.length) cols = [...v.params.columns];
    colPicker.querySelectorAll('input').forEach((cb) => { /** @type {HTMLInputElement} */ (cb).checked = cols.includes(/** @type {HTMLInputElement} */ (cb).value); });
    viewName.value = v.name;
    readForm();
    load(true);
  });
  saveView.addEventListener('click', async () => {
    readForm();
    viewErr.textContent = ''; viewName.removeAttribute('aria-invalid');
    if (!viewName.value.trim()) { viewErr.textContent = 'Name the view first'; viewName.setAttribute('aria-invalid', 'true'); viewName.focus(); return; }
    try {
      const v = await api('/api/v1/views', { method: 'POST', body: { entity, name: viewName.value.trim(), params: { q: params.q || null, filter: params.filter || null, sort: params.sort || null, columns: cols } } });
      await loadViews();
      viewSel.value = String(v.id);
      toast(`View "${v.name}" saved`);
    } catch (e) {
      viewErr.textContent = e.field === 'name' ? `View name ${friendly(e.message, 'name')}` : e.message;
      viewName.setAttribute('aria-invalid', 'true'); viewName.focus();
    }
  });
  bulkGo.addEventListener('click', async () => {
    const body = {};
    try {
      if (bulkOwner) { const o = bulkOwner.get(); if (o) body[ownerField.name] = o; }
      if (bulkStatus) { const st = bulkStatus.get(); if (st) body.status = st; }
    } catch (e) { toast(e.message, 'error'); return; }
    if (!Object.keys(body).length) { toast('Choose what to change first', 'error'); return; }
    if (!selected.size) { toast('Tick the records to change first', 'error'); return; }
    bulkGo.disabled = true;
    let done = 0;
    const failed = [];
    for (const id of selected) {
      try {
        const cur = rows.find((r) => r.id === id) || await api(`/api/v1/${entity}/${id}`);
        await api(`/api/v1/${entity}/${id}`, { method: 'PATCH', body, headers: { 'If-Match': etagOf(cur) } });
        done += 1;
      } catch (e) { failed.push(`${titleOf(entity, rows.find((r) => r.id === id) || {})}: ${e.message}`); }
    }
    bulkGo.disabled = false;
    selected.clear(); sync();
    toast(failed.length ? `${done} changed, ${failed.length} refused: ${failed[0]}` : `${done} changed`, failed.length ? 'error' : 'info');
    bulkCount.dataset.done = String(done);
    await load(true);
  });
  await Promise.all([load(true), loadViews()]);
  return null;
}

// ---------------------------------------------------------------------------- create

// Fields a create form offers: required first, then the writable rest.
const FORM_SKIP = new Set(['custom', 'comm_prefs', 'source', 'source_ref', 'external_id', 'tz', 'time_windows']);

/**
 * A form of `fields` showing each field's error from the API beside it.
 * @returns {{form: HTMLFormElement, values: () => any, showError: (e: any) => void, clear: () => void}}
 */
export function fieldForm(m, fields, initial, idPrefix) {
  const inputs = new Map();
  const general = h('p', { class: 'error', role: 'alert', id: `${idPrefix}-error` });
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'record-form', novalidate: true }, general));
  for (const f of fields) {
    const id = `${idPrefix}-${f.name}`;
    const inp = input(f, initial[f.name], id);
    inputs.set(f.name, inp);
    form.append(h('div', { class: 'form-field' }, h('label', { for: id }, human(f.name), f.required ? h('span', { 'aria-hidden': 'true' }, ' *') : null), inp.el,
      h('span', { class: 'field-error', id: `${id}-error`, role: 'alert' })));
  }
  const clear = () => { form.querySelectorAll('.field-error').forEach((x) => { x.textContent = ''; }); general.textContent = ''; form.querySelectorAll('[aria-invalid]').forEach((x) => x.removeAttribute('aria-invalid')); };
  const values = () => {
    const out = {};
    for (const [name, inp] of inputs) {
      const v = inp.get();
      const f = m.fields.find((x) => x.name === name);
      if ((v === null || v === '') && (initial[name] === undefined || initial[name] === null) && !f.required) continue;
      out[name] = v;
    }
    return out;
  };
  const showError = (e) => {
    const slot = e.field && form.querySelector(`#${idPrefix}-${e.field}-error`);
    if (slot) {
      slot.textContent = friendly(e.message, e.field);
      const el = form.querySelector(`#${idPrefix}-${e.field}`);
      if (el) { el.setAttribute('aria-invalid', 'true'); /** @type {HTMLElement} */ (el).focus(); }
    } else general.textContent = e.message;
  };
  return { form, values, showError, clear };
}

// A new deal is in its account's currency (the form starts at the tenant's default, the
// column's default, whatever the account's), until the user types a currency of their own.
function followAccountCurrency(ff) {
  const cur = /** @type {HTMLInputElement | null} */ (ff.form.querySelector('#create-currency'));
  const acc = ff.form.querySelector('#create-account_id');
  if (!cur || !acc) return;
  let typed = false;
  cur.addEventListener('input', () => { typed = true; });
  const follow = async () => {
    let id;
    try { id = ff.values().account_id; } catch { return; } // a name typed, not yet picked
    if (!id || typed) return;
    const a = await api(`/api/v1/accounts/${id}`).catch(() => null);
    if (a && a.currency && !typed) cur.value = a.currency;
  };
  acc.addEventListener('input', follow);
  follow();
}

// The equipment models the caller's fleet has, as suggestions for a new asset's model.
async function modelSuggestions(form) {
  const inp = form.querySelector('#create-equipment_model');
  if (!inp) return;
  const r = await api('/api/v1/fleet/health').catch(() => ({ models: [] }));
  const list = h('datalist', { id: 'create-equipment_model-options' }, r.models.map((x) => h('option', { value: x.equipment_model })));
  inp.after(list);
  inp.setAttribute('list', list.id);
}

export async function createView(root, [entity, ...preset]) {
  const m = await entityMeta(entity); // assets too: /meta/entities describes them
  root.append(h('h1', {}, `New ${human(m.singular).toLowerCase()}`));
  if (!m.may_create) { root.append(h('p', { class: 'error' }, `Your role cannot create ${SCREENS[entity]?.title.toLowerCase() || entity}.`)); return null; }
  // preset "field=value" pairs from a related list's "New" link (e.g. account_id=5)
  const initial = Object.fromEntries(preset.map((p) => p.split('=')).map(([k, v]) => [k, /^\d+$/.test(v) ? Number(v) : v]));
  for (const f of m.fields) if (initial[f.name] === undefined && f.default !== null && typeof f.default !== 'object') initial[f.name] = f.default;
  // a lead's source is a choice people make (web, referral, ...); elsewhere `source` names an integration
  const fields = m.fields.filter((f) => editable(f) && (!FORM_SKIP.has(f.name) || (f.name === 'source' && f.enum.length > 0)))
    .sort((a, b) => Number(b.required) - Number(a.required));
  const ff = fieldForm(m, fields.map((f) => forEdit(entity, f)), initial, 'create');
  const save = h('button', { type: 'submit', class: 'primary', id: 'create-save' }, 'Create');
  // an asset has no page of its own: it shows in its account's equipment list
  const back = entity === 'assets' ? (initial.account_id ? `#/r/accounts/${initial.account_id}` : '#/accounts') : `#/${entity}`;
  ff.form.append(h('div', { class: 'toolbar' }, save, h('a', { href: back }, 'Cancel')));
  root.append(ff.form);
  if (entity === 'assets') modelSuggestions(ff.form);
  if (entity === 'opportunities') followAccountCurrency(ff);
  ff.form.addEventListener('submit', async (e) => {
    e.preventDefault();
    ff.clear();
    save.disabled = true; save.textContent = 'Creating…';
    try {
      const row = await api(`/api/v1/${entity}`, { method: 'POST', body: ff.values(), headers: { 'Idempotency-Key': crypto.randomUUID() } });
      rememberLabel(entity, row.id, titleOf(entity, row));
      toast(`${human(m.singular)} created`);
      location.hash = entity === 'assets' ? `#/r/accounts/${row.account_id}` : `#/r/${entity}/${row.id}`;
    } catch (err) { ff.showError(err); } finally { save.disabled = false; save.textContent = 'Create'; }
  });
  return null;
}

// ---------------------------------------------------------------------------- record

// An ETag conflict explained: who changed the record last and when (from its audit trail).
async function conflictMessage(entity, id) {
  try {
    const a = await api(`/api/v1/${entity}/${id}/audit${q({ limit: 1 })}`);
    const last = a.items[0];
    if (last) {
      const who = last.actor_id ? (await labels('users', [last.actor_id])).get(last.actor_id) || 'another user' : 'an automatic process';
      return `Changed by ${who} at ${fmtTime(last.at)} since you opened it: reload, or overwrite with your value.`;
    }
  } catch { /* fall through */ }
  return 'Changed by someone else since you opened it: reload, or overwrite with your value.';
}

export async function recordView(root, [entity, id]) {
  const m = await entityMeta(entity);
  let row;
  try { row = await api(`/api/v1/${entity}/${id}`); } catch (e) { root.append(errorBox(e)); return null; }
  rememberLabel(entity, row.id, titleOf(entity, row));
  const heading = h('h1', { id: 'record-title' }, titleOf(entity, row));
  const actions = h('div', { class: 'toolbar', id: 'record-actions' });
  root.append(h('div', { class: 'toolbar' }, h('a', { href: `#/${entity}` }, `← ${SCREENS[entity]?.title || entity}`)), h('div', { class: 'record-head' }, heading, actions));
  const status = h('p', { class: 'muted', id: 'record-meta' });
  const setStatus = () => { status.textContent = `Created ${fmtTime(row.created_at)}${row.updated_at ? ` · updated ${fmtTime(row.updated_at)}` : ''}`; };
  setStatus();
  const grid = h('dl', { class: 'fields', id: 'fields' });
  root.append(status, grid);
  const fields = m.fields.filter((f) => shown(f) && !['created_at', 'updated_at'].includes(f.name) && !(f.kind === 'object' && !Object.keys(row[f.name] || {}).length));

  function fieldRow(f) {
    const dd = h('dd', { dataset: { field: f.name } });
    const dt = h('dt', {}, human(f.name));
    // a value set only by an action (a converted lead's status) is not edited in place
    const canEdit = m.may_update && editable(f) && (!f.enum.length || row[f.name] === null || forEdit(entity, f).enum.includes(row[f.name]));
    const show = () => {
      dd.replaceChildren(h('span', { class: 'value' }, display(f, row)));
      if (canEdit) {
        dd.append(h('button', { type: 'button', class: 'edit', 'aria-label': `Edit ${human(f.name)}`, onclick: edit }, 'Edit'));
      }
    };
    const edit = () => {
      const inp = input(forEdit(entity, f), row[f.name], `edit-${f.name}`);
      const err = h('span', { class: 'field-error', id: `edit-${f.name}-error`, role: 'alert' });
      const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
      const form = h('form', { class: 'inline-edit', novalidate: true }, inp.el, save, h('button', { type: 'button', onclick: show }, 'Cancel'), err);
      form.addEventListener('keydown', (e) => { if (e.key === 'Escape') show(); });
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        err.textContent = '';
        save.disabled = true; save.textContent = 'Saving…';
        let value;
        try { value = inp.get(); } catch (ex) { err.textContent = ex.message; save.disabled = false; save.textContent = 'Save'; return; }
        try {
          await saveValues({ [f.name]: value }, etagOf(row));
          show();
        } catch (ex) {
          save.disabled = false; save.textContent = 'Save';
          if (ex.status === 412) {
            err.replaceChildren(await conflictMessage(entity, id), ' ',
              h('button', { type: 'button', onclick: () => render() }, 'Reload'), ' ',
              h('button', { type: 'button', onclick: async () => { try { await saveValues({ [f.name]: inp.get() }, '*'); show(); } catch (x) { err.textContent = x.message; } } }, 'Overwrite'));
          } else {
            err.textContent = ex.field && ex.field !== f.name ? ex.message : friendly(ex.message, f.name);
            inp.el.setAttribute('aria-invalid', 'true');
          }
        }
      });
      dd.replaceChildren(form);
      inp.focus();
    };
    show();
    return [dt, dd];
  }
  // `row` is one object for the whole page (the boxes of related.js edit it too): updated in
  // place, so every box sends the record's current ETag
  async function saveValues(values, ifMatch) {
    Object.assign(row, await api(`/api/v1/${entity}/${id}`, { method: 'PATCH', body: values, headers: { 'If-Match': ifMatch } }));
    heading.textContent = titleOf(entity, row);
    rememberLabel(entity, row.id, titleOf(entity, row));
    setStatus();
    for (const dd of grid.querySelectorAll('dd')) {
      const f = fields.find((x) => x.name === /** @type {HTMLElement} */ (dd).dataset.field);
      if (f && !dd.querySelector('form')) dd.querySelector('.value')?.replaceChildren(display(f, row));
    }
    toast('Saved');
  }
  async function render() {
    Object.assign(row, await api(`/api/v1/${entity}/${id}`));
    grid.replaceChildren(...fields.flatMap(fieldRow));
    heading.textContent = titleOf(entity, row);
    setStatus();
  }
  grid.replaceChildren(...fields.flatMap(fieldRow));

  if (m.may_delete) {
    actions.append(h('button', { type: 'button', class: 'danger', id: 'delete-record', onclick: () => confirmDelete(entity, m, row) }, 'Delete'));
  }
  const extra = await import('./related.js');
  await extra.decorate(root, actions, entity, row, m);
  const audit = h('details', { id: 'audit' }, h('summary', {}, 'History of changes'));
  audit.addEventListener('toggle', () => { if (audit.open && audit.children.length === 1) auditList(audit, entity, id, m, row); }, { once: false });
  root.append(audit);
  return null;
}

// Actions of the audit trail in words (the API's insert/update/delete).
const DID = { insert: 'created the record', delete: 'deleted the record', update: 'changed the record' };

async function auditList(box, entity, id, m, row) {
  try {
    const a = await api(`/api/v1/${entity}/${id}/audit${q({ limit: 100 })}`);
    const who = await labels('users', a.items.map((x) => x.actor_id));
    // a value as the field shows it on the page: names for references, money, local times
    const fmt = (name, v) => {
      const f = m.fields.find((x) => x.name === name);
      if (v === null || v === undefined || v === '') return '—';
      if (f && !['object', 'array'].includes(f.kind) && typeof v !== 'object') return display(f, { [name]: v, currency: row.currency });
      return typeof v === 'object' ? JSON.stringify(v) : String(v);
    };
    box.append(a.items.length ? h('ol', { class: 'audit' }, a.items.map((x) => h('li', {},
      h('span', { class: 'muted' }, fmtTime(x.at)), ' ', who.get(x.actor_id) || 'an automatic process', ' ',
      x.action === 'update' && x.field ? [`changed ${human(x.field)}: `, h('del', {}, fmt(x.field, x.old_value)), ' → ', h('ins', {}, fmt(x.field, x.new_value))] : DID[x.action] || `${x.action} (record)`)))
      : h('p', { class: 'muted' }, 'No recorded changes.'));
  } catch (e) { box.append(errorBox(e)); }
}

/** Asks before deleting `row` (with its ETag: a record changed meanwhile is not deleted);
 * `onDeleted` (a related list's reload) replaces going to the entity's list. */
export function confirmDelete(entity, m, row, { onDeleted = null } = {}) {
  const dlg = /** @type {HTMLDialogElement} */ (h('dialog', { id: 'confirm-delete', 'aria-labelledby': 'confirm-delete-title' }));
  const err = h('p', { class: 'error', role: 'alert' });
  const yes = h('button', { type: 'button', class: 'danger', id: 'confirm-delete-yes' }, 'Delete');
  dlg.append(h('h2', { id: 'confirm-delete-title' }, `Delete ${human(m.singular).toLowerCase()} "${titleOf(entity, row)}"?`),
    h('p', {}, 'This cannot be undone.'), err,
    h('div', { class: 'toolbar' }, yes, h('button', { type: 'button', onclick: () => dlg.close() }, 'Keep it')));
  yes.addEventListener('click', async () => {
    yes.disabled = true;
    try {
      await api(`/api/v1/${entity}/${row.id}`, { method: 'DELETE', headers: { 'If-Match': etagOf(row) } });
      dlg.close();
      toast(`${human(m.singular)} deleted`);
      if (onDeleted) await onDeleted(); else location.hash = `#/${entity}`;
    } catch (e) {
      yes.disabled = false;
      err.textContent = e.status === 409 ? `Still in use: ${e.message}` : e.status === 412 ? 'Changed meanwhile: reload the page first.' : e.message;
    }
  });
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
}

/** A related list: rows of `entity` matching `filter`, with a "New" link prefilled. */
export async function relatedList(title, entity, filter, preset, canCreate) {
  const box = h('section', { class: 'related', dataset: { related: entity } }, h('h2', {}, title));
  try {
    const m = await entityMeta(entity);
    const rows = await listAll(`/api/v1/${entity}`, { filter }, 200);
    const cols = (SCREENS[entity]?.columns || ['name']).filter((c) => !Object.keys(preset).includes(c)).slice(0, 5).map((n) => cell(m, n));
    if (canCreate && m.may_create) box.append(h('a', { class: 'button', href: `#/new/${entity}/${Object.entries(preset).map(([k, v]) => `${k}=${v}`).join('/')}` }, `New ${human(m.singular).toLowerCase()}`));
    box.append(rows.length ? table(cols, rows, (r) => { location.hash = `#/r/${entity}/${r.id}`; }) : h('p', { class: 'muted' }, `No ${title.toLowerCase()}.`));
  } catch (e) { box.append(errorBox(e)); }
  return box;
}

export { refLink };
