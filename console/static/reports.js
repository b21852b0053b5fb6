// @ts-check
// Reports and dashboards: a report builder (record type, filters, up to two groupings with
// time buckets, measures, chart), saved and shared reports, CSV export, and dashboards of
// report tiles that refresh themselves. Reports run in the database (/api/v1/reports).
import { api, download, q } from './api.js';
import { h, toast, errorBox, fmtMoney, fmtTime, fmtDate, fmtClock, fromWallClock, scrollBox, present, fieldMessages } from './ui.js';
import { barChart, lineChart, pieChart } from './chart.js';
import { entityMeta, human, friendly } from './fields.js';

const ENTITIES = ['opportunities', 'accounts', 'contacts', 'leads', 'activities', 'work_orders'];
const OPS = { eq: '=', ne: '≠', lt: '<', lte: '≤', gt: '>', gte: '≥', contains: 'contains', in: 'is one of' };
const groupable = (f) => f.kind === 'enum' || f.kind === 'bool' || f.kind === 'date' || f.kind === 'datetime' || (f.kind === 'int' && f.ref) || (f.kind === 'text' && !['email', 'phone', 'body', 'description', 'address'].includes(f.name) && (f.max_len || 0) <= 300);
const numeric = (f) => (f.kind === 'decimal' || (f.kind === 'int' && !f.ref)) && !['id', 'version'].includes(f.name);
const TIME_RE = /^\d{4}-\d{2}-\d{2}/;
// records of an account: groupable by the account's customer segment (insights; the
// report answers the segment's name)
const SEGMENTED = ['accounts', 'opportunities', 'activities', 'work_orders'];
const SEGMENT = ['segment', 'Customer segment'];

// Ready-made starting points (sales and field-service questions); each opens in the builder.
const TEMPLATES = {
  'Open pipeline by stage': { entity: 'opportunities', filter: { and: [{ field: 'status', op: 'eq', value: 'open' }] }, group_by: [{ field: 'stage_id' }], measures: [{ agg: 'count' }, { agg: 'sum', field: 'amount' }], chart: 'bar' },
  'Won deals by month': { entity: 'opportunities', filter: { and: [{ field: 'status', op: 'eq', value: 'won' }] }, group_by: [{ field: 'closed_at', bucket: 'month' }], measures: [{ agg: 'sum', field: 'amount' }], chart: 'line' },
  'Deals won and lost by owner': { entity: 'opportunities', group_by: [{ field: 'owner_id' }, { field: 'status' }], measures: [{ agg: 'count' }], chart: 'bar' },
  'Lead source conversion': { entity: 'leads', group_by: [{ field: 'source' }, { field: 'status' }], measures: [{ agg: 'count' }], chart: 'bar' },
  'Open work orders by priority and status': { entity: 'work_orders', filter: { and: [{ field: 'status', op: 'in', value: ['new', 'assigned', 'scheduled', 'in_progress'] }] }, group_by: [{ field: 'priority' }, { field: 'status' }], measures: [{ agg: 'count' }], chart: 'bar' },
  'Work orders completed per technician by week': { entity: 'work_orders', filter: { and: [{ field: 'status', op: 'eq', value: 'done' }] }, group_by: [{ field: 'completed_at', bucket: 'week' }, { field: 'assignee_id' }], measures: [{ agg: 'count' }], chart: 'bar' },
  'Activities per rep and type': { entity: 'activities', group_by: [{ field: 'owner_id' }, { field: 'type' }], measures: [{ agg: 'count' }], chart: 'bar' },
  'Accounts and revenue by customer segment': { entity: 'accounts', group_by: [{ field: 'segment' }], measures: [{ agg: 'count' }, { agg: 'sum', field: 'annual_revenue' }], chart: 'bar' },
  'Open pipeline by customer segment': { entity: 'opportunities', filter: { and: [{ field: 'status', op: 'eq', value: 'open' }] }, group_by: [{ field: 'segment' }], measures: [{ agg: 'count' }, { agg: 'sum', field: 'amount' }], chart: 'bar' },
  'Accounts by type with revenue': { entity: 'accounts', group_by: [{ field: 'type' }], measures: [{ agg: 'count' }, { agg: 'sum', field: 'annual_revenue' }], chart: 'pie' },
};

// ---------------------------------------------------------------------------- rendering a result

/** A time bucket's start date ('YYYY-MM-DD') as the period it names: the API labels a
 * bucketed grouping "Closed at (month)", and its values are the buckets' first days (a
 * week reads as its Monday's date, under the column's "(week)"). */
function bucketText(label, v) {
  const b = /\((day|week|month|quarter|year)\)$/.exec(label);
  if (!b || !/^\d{4}-\d{2}-\d{2}$/.test(v)) return null;
  const [y, m] = v.split('-').map(Number);
  switch (b[1]) {
    case 'year': return String(y);
    case 'quarter': return `Q${Math.floor((m - 1) / 3) + 1} ${y}`;
    case 'month': return fmtDate(v, { month: 'short', year: 'numeric' });
    default: return fmtDate(v, { day: 'numeric', month: 'short', year: 'numeric' });
  }
}

/** One cell of a result as text: money in the row's currency, numbers localised, time
 * buckets as their periods. */
function cellText(result, row, i) {
  const c = result.columns[i];
  const v = row[i];
  if (v === null || v === undefined) return c.kind === 'group' ? '(none)' : '—';
  const cur = result.columns.findIndex((x) => x.kind === 'currency');
  if (c.money) return fmtMoney(v, cur >= 0 ? row[cur] : undefined);
  if (typeof v === 'number') return Number.isInteger(v) ? v.toLocaleString() : v.toLocaleString(undefined, { maximumFractionDigits: 2 });
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'string' && TIME_RE.test(v)) return v.length > 10 ? fmtTime(v) : (c.kind === 'group' && bucketText(c.label, v)) || fmtDate(v);
  return String(v).replace(/_/g, ' ');
}

function resultTable(result) {
  return h('table', { class: 'grid report-table' },
    h('thead', {}, h('tr', {}, result.columns.map((c) => h('th', { scope: 'col' }, c.label)))),
    h('tbody', {}, result.rows.map((r) => h('tr', {}, r.map((_, i) => h('td', { class: typeof r[i] === 'number' ? 'num' : '' }, cellText(result, r, i)))))));
}

/** The result as its chart (one per currency when measuring money), or a table.
 * first: chart the first measure alone (a KPI beside its count: a % and a count share no axis). */
export function renderResult(result, { first = false } = {}) {
  const box = scrollBox('Result', { class: 'report-result', dataset: { rows: result.rows.length } });
  if (!result.rows.length) { box.append(h('p', { class: 'empty' }, 'No records match this report.')); return box; }
  const groups = result.columns.map((c, i) => [c, i]).filter(([c]) => c.kind === 'group');
  const all = result.columns.map((c, i) => [c, i]).filter(([c]) => c.kind === 'measure').slice(0, first ? 1 : undefined);
  // one axis, one unit: beside an amount in money, a count would be a flat line at zero (and
  // be read in EUR); the chart takes the money measures, the table has them all
  const money = all.filter(([c]) => c.money);
  const measures = money.length ? money : all;
  const curIdx = result.columns.findIndex((c) => c.kind === 'currency');
  if (result.chart !== 'table' && groups.length && measures.length) {
    const byCur = new Map();
    for (const r of result.rows) { const k = curIdx >= 0 ? r[curIdx] : ''; byCur.set(k, [...(byCur.get(k) || []), r]); }
    for (const [cur, rows] of byCur) {
      const unit = cur && measures.some(([c]) => c.money) ? cur : '';
      const title = `${measures.map(([c]) => c.label).join(', ')} by ${groups.map(([c]) => c.label.toLowerCase()).join(' and ')}${cur ? ` (${cur})` : ''}`;
      const [, g0] = groups[0];
      if (result.chart === 'pie') {
        box.append(pieChart(rows.map((r) => ({ label: cellText(result, r, g0), value: Number(r[measures[0][1]]) })), { unit, title }));
      } else if (result.chart === 'line' && rows.every((r) => typeof r[g0] === 'string' && TIME_RE.test(r[g0]))) {
        const dates = rows.every((r) => r[g0].length === 10); // day, week or month buckets
        const pts = rows.map((r) => ({ t: new Date(dates ? `${r[g0]}T00:00:00Z` : r[g0]), avg: Number(r[measures[0][1]]) }));
        box.append(lineChart(pts, { title, unit, dates }));
      } else if (groups.length === 2) {
        // second grouping as series
        const [, g1] = groups[1];
        const series = [...new Set(rows.map((r) => cellText(result, r, g1)))].slice(0, 5);
        const labels = [...new Set(rows.map((r) => cellText(result, r, g0)))];
        const bars = labels.map((l) => ({ label: l, values: series.map((s) => Number((rows.find((r) => cellText(result, r, g0) === l && cellText(result, r, g1) === s) || [])[measures[0][1]] || 0)) }));
        box.append(barChart(bars, series, { unit, title }));
      } else {
        box.append(barChart(rows.map((r) => ({ label: cellText(result, r, g0), values: measures.map(([, i]) => Number(r[i] || 0)) })), measures.map(([c]) => c.label), { unit, title }));
      }
    }
  }
  box.append(resultTable(result));
  if (result.truncated) box.append(h('p', { class: 'muted' }, `Showing the first ${result.rows.length} rows: narrow the filters or raise the limit.`));
  return box;
}


// ---------------------------------------------------------------------------- list

export async function reportsView(root, _args, session) {
  const mayWrite = session.me && session.me.role !== 'viewer';
  root.append(h('div', { class: 'toolbar' }, h('h1', {}, 'Reports'), mayWrite ? h('a', { class: 'button primary', href: '#/report/new', id: 'new-report' }, 'New report') : null,
    h('a', { href: '#/dashboards' }, 'Dashboards')));
  try {
    const r = await api('/api/v1/reports');
    // the table scrolls in its own box on a phone, never the page
    root.append(r.items.length ? scrollBox('Saved reports', {}, h('table', { class: 'grid', id: 'report-list' },
      h('thead', {}, h('tr', {}, ['Name', 'Records', 'Chart', 'Owner', 'Shared'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, r.items.map((x) => h('tr', {}, h('td', {}, h('a', { href: `#/report/${x.id}` }, x.name)), h('td', {}, human(x.definition.entity)), h('td', {}, x.definition.chart),
        h('td', {}, x.owner_name), h('td', {}, x.shared ? 'shared' : 'private'))))))
      : h('p', { class: 'empty' }, mayWrite ? 'No saved reports yet: build one with "New report".' : 'No reports shared with you yet.'));
  } catch (e) { root.append(errorBox(e)); }
  return null;
}

// ---------------------------------------------------------------------------- builder

export async function reportView(root, [id], session) {
  const mayWrite = session.me && session.me.role !== 'viewer';
  let saved = null;
  if (id && id !== 'new') {
    try { saved = await api(`/api/v1/reports/${id}`); } catch (e) { root.append(errorBox(e)); return null; }
  }
  const def = saved ? structuredClone(saved.definition) : { entity: 'opportunities', group_by: [{ field: 'stage_id', bucket: null }], measures: [{ agg: 'count', field: null }, { agg: 'sum', field: 'amount' }], filter: null, chart: 'bar', columns: [], limit: 200 };
  // The builder edits conditions that must all hold ({and: [...]}). A report saved through
  // the API may hold one bare condition (the demo's do): the list of that one. Any other
  // shape (or, not, nesting) is kept as saved and run unchanged, never dropped.
  if (def.filter && 'field' in def.filter) def.filter = { and: [def.filter] };
  const flat = (f) => !f || (Array.isArray(f.and) && f.and.every((c) => c && typeof c === 'object' && 'field' in c));
  const keptFilter = flat(def.filter) ? null : def.filter;
  const title = h('h1', { id: 'report-title' }, saved ? saved.name : 'New report');
  const owner = saved && !saved.mine ? h('span', { class: 'muted' }, `by ${saved.owner_name}`) : null;
  root.append(h('div', { class: 'toolbar' }, h('a', { href: '#/reports' }, '← Reports')), h('div', { class: 'toolbar' }, title, owner));
  const form = h('form', { class: 'report-builder', id: 'report-builder' });
  if (!saved) {
    const tpl = /** @type {HTMLSelectElement} */ (h('select', { id: 'rb-template' }, h('option', { value: '' }, 'Start from a ready-made report'), Object.keys(TEMPLATES).map((k) => h('option', { value: k }, k))));
    tpl.addEventListener('change', () => {
      const t = TEMPLATES[tpl.value];
      if (!t) return;
      Object.assign(def, structuredClone({ columns: [], limit: 200, filter: null, ...t }));
      const name = document.getElementById('rb-name');
      if (name) /** @type {HTMLInputElement} */ (name).value = tpl.value;
      draw().then(runIt);
    });
    root.append(h('div', { class: 'toolbar' }, h('label', { for: 'rb-template' }, 'Ready-made', tpl)));
  }
  const out = h('div', { id: 'report-out' });
  const err = h('p', { class: 'error', role: 'alert', id: 'report-error' });
  root.append(form, err, out);

  const sel = (id2, label, options, value, onchange) => {
    const s = /** @type {HTMLSelectElement} */ (h('select', { id: id2 }, options.map(([v, t]) => h('option', { value: v, selected: String(v) === String(value ?? '') }, t))));
    s.addEventListener('change', () => onchange(s.value));
    return h('label', { for: id2 }, label, s);
  };
  async function draw() {
    const m = await entityMeta(def.entity);
    const gf = m.fields.filter(groupable);
    const nf = m.fields.filter(numeric);
    const isTime = (name) => ['date', 'datetime'].includes((m.fields.find((f) => f.name === name) || {}).kind);
    form.replaceChildren(...[
      sel('rb-entity', 'Records', ENTITIES.map((e) => [e, human(e)]), def.entity, (v) => { def.entity = v; def.group_by = []; def.measures = [{ agg: 'count', field: null }]; def.filter = null; def.columns = []; draw(); }),
      [0, 1].map((i) => h('span', { class: 'rb-group' },
        sel(`rb-group-${i}`, i ? 'Then by' : 'Group by', [['', '—'], ...gf.map((f) => [f.name, human(f.name)]), ...(SEGMENTED.includes(def.entity) ? [SEGMENT] : [])], def.group_by[i]?.field, (v) => {
          if (!v) def.group_by = def.group_by.slice(0, i); else def.group_by[i] = { field: v, bucket: isTime(v) ? 'month' : null };
          def.group_by = def.group_by.filter(Boolean); draw();
        }),
        def.group_by[i] && isTime(def.group_by[i].field) ? sel(`rb-bucket-${i}`, 'By', ['day', 'week', 'month', 'quarter', 'year'].map((b) => [b, b]), def.group_by[i].bucket, (v) => { def.group_by[i].bucket = v; }) : null)),
      def.measures.map((ms, i) => h('span', { class: 'rb-measure' },
        sel(`rb-agg-${i}`, `Measure ${i + 1}`, ['count', 'sum', 'avg', 'min', 'max'].map((a) => [a, a]), ms.agg, (v) => { ms.agg = v; if (v !== 'count' && !ms.field && nf[0]) ms.field = nf[0].name; if (v === 'count') ms.field = null; draw(); }),
        ms.agg !== 'count' ? sel(`rb-field-${i}`, 'of', nf.map((f) => [f.name, human(f.name)]), ms.field, (v) => { ms.field = v; }) : null,
        def.measures.length > 1 ? h('button', { type: 'button', 'aria-label': `Remove measure ${i + 1}`, onclick: () => { def.measures.splice(i, 1); draw(); } }, '×') : null)),
      def.measures.length < 4 ? h('button', { type: 'button', id: 'rb-add-measure', onclick: () => { def.measures.push({ agg: 'count', field: null }); draw(); } }, '+ measure') : null,
      filterEditor(m),
      !def.group_by.length ? h('fieldset', { class: 'rb-columns' }, h('legend', {}, 'Columns (when not grouped)'),
        m.fields.filter((f) => !['custom', 'conversion_mapping', 'comm_prefs', 'version', 'phone_normalized', 'time_windows', 'location'].includes(f.name)).map((f) => {
          const cb = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', value: f.name, checked: def.columns.includes(f.name) }));
          cb.addEventListener('change', () => { def.columns = cb.checked ? [...def.columns, f.name] : def.columns.filter((c) => c !== f.name); });
          return h('label', { class: 'inline' }, cb, human(f.name));
        }), SEGMENTED.includes(def.entity) ? (() => {
          const cb = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', value: SEGMENT[0], checked: def.columns.includes(SEGMENT[0]) }));
          cb.addEventListener('change', () => { def.columns = cb.checked ? [...def.columns, SEGMENT[0]] : def.columns.filter((c) => c !== SEGMENT[0]); });
          return h('label', { class: 'inline' }, cb, SEGMENT[1]);
        })() : null) : null,
      sel('rb-chart', 'Chart', [['bar', 'Bar'], ['line', 'Line (time)'], ['pie', 'Pie'], ['table', 'Table only']], def.chart, (v) => { def.chart = v; }),
      h('div', { class: 'toolbar' },
        h('button', { type: 'submit', class: 'primary', id: 'rb-run' }, 'Run'),
        h('button', { type: 'button', id: 'rb-csv', onclick: () => exportAs('csv') }, 'Export CSV'),
        h('button', { type: 'button', id: 'rb-xlsx', onclick: () => exportAs('xlsx') }, 'Export XLSX'),
        h('button', { type: 'button', id: 'rb-pdf', onclick: () => exportAs('pdf') }, 'Export PDF'),
        mayWrite && (!saved || saved.mine || session.me.role === 'admin') ? [
          h('label', { class: 'inline' }, h('input', { type: 'checkbox', id: 'rb-shared', checked: saved ? saved.shared : false }), 'Shared'),
          h('input', { id: 'rb-name', 'aria-label': 'Report name', placeholder: 'Report name', maxlength: 200, value: saved ? saved.name : '' }),
          h('button', { type: 'button', id: 'rb-save', onclick: save }, saved ? 'Save changes' : 'Save')] : null,
        saved && mayWrite ? h('button', { type: 'button', id: 'rb-pin', onclick: pin }, 'Pin to dashboard') : null),
    ].flat(Infinity).filter(Boolean));
  }
  function filterEditor(m) {
    if (keptFilter) {
      return h('fieldset', { class: 'rb-filters' }, h('legend', {}, 'Filters'),
        h('p', { class: 'muted', id: 'rb-kept-filter' }, 'This report\'s filter combines conditions in a way the builder does not edit (any of, or not); it is kept and applied as saved.'));
    }
    const rows = (def.filter && def.filter.and) || [];
    const fields = m.fields.filter((f) => f.kind !== 'object' && f.kind !== 'array' && f.kind !== 'point');
    const box = h('fieldset', { class: 'rb-filters' }, h('legend', {}, 'Filters (all must hold)'));
    rows.forEach((c, i) => {
      const f = fields.find((x) => x.name === c.field) || fields[0];
      const val = f.enum.length ? h('select', { 'aria-label': 'Value', onchange: (e) => { c.value = e.target.value; } }, f.enum.map((v) => h('option', { value: v, selected: v === c.value }, v)))
        : h('input', { 'aria-label': 'Value', value: c.value ?? '', type: ['int', 'decimal'].includes(f.kind) ? 'number' : f.kind === 'date' || f.kind === 'datetime' ? 'date' : 'text',
          onchange: (e) => {
            const v = e.target.value;
            const one = (x) => (['int', 'decimal'].includes(f.kind) ? Number(x) : f.kind === 'datetime' ? fromWallClock(x) : x);
            c.value = c.op === 'in' ? v.split(',').map((x) => one(x.trim())).filter((x) => x !== '') : one(v);
          } });
      box.append(h('div', { class: 'toolbar rb-filter' },
        h('select', { 'aria-label': 'Field', onchange: (e) => { c.field = e.target.value; c.value = null; draw(); } }, fields.map((x) => h('option', { value: x.name, selected: x.name === f.name }, human(x.name)))),
        h('select', { 'aria-label': 'Operator', onchange: (e) => { c.op = e.target.value; if (c.op === 'in' && !Array.isArray(c.value)) c.value = c.value === null ? [] : [c.value]; if (c.op !== 'in' && Array.isArray(c.value)) c.value = c.value[0] ?? null; draw(); } }, Object.entries(OPS).map(([k, t]) => h('option', { value: k, selected: k === c.op }, t))),
        val, h('button', { type: 'button', 'aria-label': 'Remove filter', onclick: () => { rows.splice(i, 1); def.filter = rows.length ? { and: rows } : null; draw(); } }, '×')));
    });
    box.append(h('button', { type: 'button', id: 'rb-add-filter', onclick: () => { rows.push({ field: fields[0].name, op: 'eq', value: null }); def.filter = { and: rows }; draw(); } }, '+ filter'));
    return box;
  }
  const body = () => ({ ...def, group_by: def.group_by.map((g) => (g.bucket ? g : { field: g.field })), filter: keptFilter || (def.filter && def.filter.and.length ? { and: def.filter.and.filter((c) => c.value !== null && c.value !== '') } : null) });
  async function runIt() {
    err.textContent = '';
    out.replaceChildren(h('p', { class: 'muted' }, 'Running…'));
    try {
      const r = await api('/api/v1/reports/run', { method: 'POST', body: body() });
      out.replaceChildren(renderResult(r));
    } catch (e) { out.replaceChildren(); err.textContent = e.message; }
  }
  async function exportAs(ext) {
    err.textContent = '';
    try { await download(`/api/v1/reports/export.${ext}`, body(), `${(saved && saved.name) || 'report'}.${ext}`); } catch (e) { err.textContent = e.message; }
  }
  async function save() {
    err.textContent = '';
    const name = /** @type {HTMLInputElement} */ (document.getElementById('rb-name')).value.trim();
    if (!name) { err.textContent = 'Give the report a name first.'; return; }
    const shared = /** @type {HTMLInputElement} */ (document.getElementById('rb-shared')).checked;
    try {
      const r = saved ? await api(`/api/v1/reports/${saved.id}`, { method: 'PATCH', body: { name, shared, definition: body() } })
        : await api('/api/v1/reports', { method: 'POST', body: { name, shared, definition: body() } });
      toast('Report saved');
      if (!saved) { location.hash = `#/report/${r.id}`; return; }
      saved = r; title.textContent = r.name;
    } catch (e) { err.textContent = e.field === 'name' ? `Report name ${friendly(e.message, 'name')}` : e.message; }
  }
  async function pin() {
    const dashboards = (await api('/api/v1/dashboards')).items.filter((d) => d.mine);
    const dlg = /** @type {HTMLDialogElement} */ (h('dialog', { id: 'pin-dialog', 'aria-labelledby': 'pin-title' }));
    const choice = /** @type {HTMLSelectElement} */ (h('select', { id: 'pin-dashboard' }, dashboards.map((d) => h('option', { value: d.id }, d.name)), h('option', { value: '' }, 'A new dashboard…')));
    const newName = /** @type {HTMLInputElement} */ (h('input', { id: 'pin-new-name', 'aria-label': 'New dashboard name', placeholder: 'New dashboard name', value: 'My dashboard', maxlength: 200 }));
    const perr = h('p', { class: 'error', role: 'alert' });
    const go = h('button', { type: 'submit', class: 'primary', id: 'pin-go' }, 'Pin');
    const f = /** @type {HTMLFormElement} */ (h('form', {}));
    const msgs = fieldMessages(f);
    const nameError = msgs.slot(newName);
    f.append(h('h2', { id: 'pin-title' }, `Pin "${saved.name}"`), h('label', { for: 'pin-dashboard' }, 'Dashboard', choice), newName, nameError, perr,
      h('div', { class: 'toolbar' }, go, h('button', { type: 'button', onclick: () => dlg.close() }, 'Cancel')));
    const sync = () => { newName.hidden = choice.value !== ''; nameError.hidden = newName.hidden; };
    choice.addEventListener('change', sync); sync();
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      msgs.clear(); perr.textContent = '';
      try {
        let d;
        if (choice.value) {
          const cur = dashboards.find((x) => String(x.id) === choice.value);
          d = await api(`/api/v1/dashboards/${cur.id}`, { method: 'PATCH', body: { tiles: [...cur.tiles, { report_id: saved.id, width: 1 }] } });
        } else {
          // named as typed (an emptied name was silently "My dashboard")
          d = await api('/api/v1/dashboards', { method: 'POST', body: { name: newName.value.trim(), tiles: [{ report_id: saved.id, width: 1 }] } });
        }
        dlg.close();
        toast(`Pinned to ${d.name}`);
        location.hash = `#/dashboard/${d.id}`;
      } catch (ex) {
        if (ex.field === 'name' && !choice.value) msgs.mark(newName, `Name ${friendly(ex.message, 'name')}`); else perr.textContent = ex.message;
      }
    });
    dlg.append(f);
    dlg.addEventListener('close', () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); runIt(); });
  await draw();
  if (saved) await runIt();
  return null;
}

// ---------------------------------------------------------------------------- dashboards

export async function dashboardsView(root, _args, session) {
  const mayWrite = session.me && session.me.role !== 'viewer';
  const name = /** @type {HTMLInputElement} */ (h('input', { id: 'new-dashboard-name', 'aria-label': 'New dashboard name', placeholder: 'New dashboard name', maxlength: 200 }));
  const create = /** @type {HTMLFormElement} */ (h('form', { class: 'toolbar' }));
  // a dashboard is named as typed: with no name it was silently called "Dashboard"; the
  // API's refusal is said beside the name
  const msgs = fieldMessages(create);
  create.append(name, h('button', { type: 'submit' }, 'Create dashboard'), msgs.slot(name));
  create.addEventListener('submit', async (e) => {
    e.preventDefault();
    msgs.clear();
    try { const d = await api('/api/v1/dashboards', { method: 'POST', body: { name: name.value.trim() } }); location.hash = `#/dashboard/${d.id}`; } catch (ex) {
      if (ex.field === 'name') msgs.mark(name, `Name ${friendly(ex.message, 'name')}`); else toast(ex.message, 'error');
    }
  });
  root.append(...present(h('div', { class: 'toolbar' }, h('h1', {}, 'Dashboards'), h('a', { href: '#/reports' }, 'Reports')), mayWrite ? create : null));
  try {
    const r = await api('/api/v1/dashboards');
    root.append(r.items.length ? h('ul', { id: 'dashboard-list' }, r.items.map((d) => h('li', {}, h('a', { href: `#/dashboard/${d.id}` }, d.name),
      h('span', { class: 'muted' }, ` · ${d.tiles.length} tiles · ${d.owner_name}${d.shared ? ' · shared' : ''}`))))
      : h('p', { class: 'empty' }, 'No dashboards yet: open a saved report and "Pin to dashboard".'));
  } catch (e) { root.append(errorBox(e)); }
  return null;
}

const REFRESH_MS = 60000;

export async function dashboardView(root, [id]) {
  let d;
  try { d = await api(`/api/v1/dashboards/${id}`); } catch (e) { root.append(errorBox(e)); return null; }
  const stamp = h('span', { class: 'muted', id: 'dashboard-stamp', role: 'status' });
  const grid = h('div', { class: 'dashboard', id: 'dashboard' });
  root.append(h('div', { class: 'toolbar' }, h('a', { href: '#/dashboards' }, '← Dashboards'), h('h1', {}, d.name),
    h('button', { type: 'button', id: 'dashboard-refresh', onclick: () => refresh(0) }, 'Refresh'), stamp), grid);
  if (!d.tiles.length) grid.append(h('p', { class: 'empty' }, 'No tiles yet: open a saved report and "Pin to dashboard".'));
  const tiles = d.tiles.map((t) => {
    const body = h('div', { class: 'tile-body' }, h('p', { class: 'muted' }, 'Loading…'));
    const head = h('h2', {}, h('a', { href: `#/report/${t.report_id}` }, 'Report'));
    const remove = d.mine ? h('button', { type: 'button', class: 'tile-remove', 'aria-label': 'Remove tile', onclick: async () => {
      try { d = await api(`/api/v1/dashboards/${d.id}`, { method: 'PATCH', body: { tiles: d.tiles.filter((x) => x !== t) } }); box.remove(); } catch (e) { toast(e.message, 'error'); }
    } }, '×') : null;
    const box = h('section', { class: `tile w${t.width}`, dataset: { report: t.report_id } }, h('div', { class: 'tile-head' }, head, remove), body);
    grid.append(box);
    return { t, body, head };
  });
  // Loads and the minute's refresh accept a result computed for this user within the
  // refresh interval (the server keeps each report's latest result); the button runs now.
  async function refresh(maxAge = Math.round(REFRESH_MS / 1000)) {
    /** @type {number[]} */
    const asOf = [];
    await Promise.all(tiles.map(async ({ t, body, head }) => {
      try {
        const [rep, res] = await Promise.all([api(`/api/v1/reports/${t.report_id}`), api(`/api/v1/reports/${t.report_id}/result?max_age_s=${maxAge}`)]);
        head.firstChild.textContent = rep.name;
        body.replaceChildren(renderResult(res));
        if (res.as_of) asOf.push(Date.parse(res.as_of));
      } catch (e) { body.replaceChildren(errorBox(e)); }
    }));
    const oldest = asOf.length ? new Date(Math.min(...asOf)) : new Date();
    stamp.textContent = `as of ${fmtClock(oldest)}`;
    grid.dataset.ready = 'yes';
  }
  await refresh();
  const timer = setInterval(() => { if (document.visibilityState === 'visible') refresh(); }, REFRESH_MS);
  return () => clearInterval(timer);
}



// ---------------------------------------------------------------------------- KPIs

const PERIODS = [['30', 'Last 30 days'], ['90', 'Last 90 days'], ['365', 'Last 12 months']];

/** The ready-made KPIs over a period, each with its definition (GET /api/v1/kpis). */
export async function kpisView(root) {
  const period = /** @type {HTMLSelectElement} */ (h('select', { id: 'kpi-period' }, PERIODS.map(([v, t]) => h('option', { value: v, selected: v === '90' }, t))));
  const grid = h('div', { class: 'dashboard', id: 'kpis' });
  root.append(h('div', { class: 'toolbar' }, h('h1', {}, 'KPIs'), h('label', { for: 'kpi-period' }, 'Period', period)), grid);
  let list;
  try { list = (await api('/api/v1/kpis')).items; } catch (e) { root.append(errorBox(e)); return null; }
  async function load() {
    grid.dataset.ready = 'no';
    const until = new Date();
    const since = new Date(until.getTime() - Number(period.value) * 86400000);
    grid.replaceChildren(...await Promise.all(list.map(async (k) => {
      const body = h('div', {});
      try {
        const res = await api(`/api/v1/kpis/${k.key}${q({ since: since.toISOString(), until: until.toISOString() })}`);
        body.append(res.rows.length ? renderResult(res, { first: true }) : h('p', { class: 'empty' }, 'No records in this period for you.'));
      } catch (e) { body.append(errorBox(e)); }
      return h('section', { class: 'tile w1', dataset: { kpi: k.key } },
        h('div', { class: 'tile-head' }, h('h2', {}, k.title), h('span', { class: 'muted' }, `${k.area} · ${k.unit}`)),
        h('p', { class: 'muted kpi-definition' }, k.definition), body);
    })));
    grid.dataset.ready = 'yes';
  }
  period.addEventListener('change', () => load());
  await load();
  return null;
}
