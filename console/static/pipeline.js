// @ts-check
// Opportunities as a pipeline board (drag and drop, or keyboard: focus a card, then
// Alt+ArrowRight / Alt+ArrowLeft) persisted with PATCH stage_id; pipeline analytics.
import { api, listAll, q, etagOf } from './api.js';
import { h, toast, errorBox, fmtMoney, fmtDate } from './ui.js';
import { barChart } from './chart.js';
import { human } from './fields.js';

async function defaultPipeline(pipelineId) {
  const pipes = await listAll('/api/v1/pipelines');
  const pipe = pipes.find((p) => String(p.id) === String(pipelineId)) || pipes.find((p) => p.is_default) || pipes[0];
  if (!pipe) throw new Error('no pipeline defined');
  const stages = (await listAll('/api/v1/pipeline_stages', { filter: { field: 'pipeline_id', op: 'eq', value: pipe.id } }))
    .sort((a, b) => a.position - b.position);
  return { pipes, pipe, stages };
}

export async function pipelineView(root, args) {
  let data;
  try { data = await defaultPipeline(args[0]); } catch (e) { root.append(errorBox(e)); return null; }
  const { pipes, pipe, stages } = data;
  const opps = await listAll('/api/v1/opportunities', { filter: { field: 'pipeline_id', op: 'eq', value: pipe.id } });
  const picker = h('select', { 'aria-label': 'Pipeline', onchange: (e) => { location.hash = `#/pipeline/${e.target.value}`; } },
    pipes.map((p) => h('option', { value: p.id, selected: p.id === pipe.id }, p.name)));
  const board = h('div', { class: 'board', id: 'board' });
  root.append(h('div', { class: 'toolbar' }, h('h1', {}, 'Pipeline'), picker,
    h('span', { class: 'muted' }, 'Drag a card to another stage, or focus it and press Alt+→ / Alt+←.')), board);

  const cols = new Map();
  for (const s of stages) {
    const list = h('div', { class: 'cards' });
    const total = h('span', { class: 'muted' });
    const col = h('section', { class: 'column', dataset: { stageId: s.id }, 'aria-label': `Stage ${s.name}` },
      h('h2', {}, h('span', {}, s.name), total), list);
    col.addEventListener('dragover', (e) => { e.preventDefault(); col.classList.add('over'); });
    col.addEventListener('dragleave', () => col.classList.remove('over'));
    col.addEventListener('drop', (e) => {
      e.preventDefault(); col.classList.remove('over');
      const id = e.dataTransfer.getData('text/plain');
      moveTo(id, s.id);
    });
    cols.set(s.id, { col, list, total, stage: s });
    board.append(col);
  }
  const cards = new Map();
  function card(o) {
    const c = h('article', { class: 'card', draggable: 'true', tabindex: 0, dataset: { oppId: o.id }, 'aria-grabbed': 'false' },
      h('a', { href: `#/r/opportunities/${o.id}`, draggable: 'false' }, h('strong', {}, o.name)), h('div', { class: 'amount' }, `${fmtMoney(o.amount, o.currency)} · ${Math.round(o.probability)}%`),
      o.close_date ? h('div', { class: 'muted' }, `closes ${fmtDate(o.close_date)}`) : null);
    c.addEventListener('dragstart', (e) => { e.dataTransfer.setData('text/plain', String(o.id)); c.setAttribute('aria-grabbed', 'true'); });
    c.addEventListener('dragend', () => c.setAttribute('aria-grabbed', 'false'));
    c.addEventListener('keydown', (e) => {
      if (!e.altKey || (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft')) return;
      e.preventDefault();
      const i = stages.findIndex((s) => s.id === o.stage_id) + (e.key === 'ArrowRight' ? 1 : -1);
      if (stages[i]) moveTo(o.id, stages[i].id);
    });
    return c;
  }
  function totals() {
    for (const { list, total } of cols.values()) {
      // one sum per currency: amounts in different currencies are never added up
      const sums = new Map();
      for (const c of list.children) {
        const o = cards.get(/** @type {HTMLElement} */ (c).dataset.oppId).o;
        sums.set(o.currency, (sums.get(o.currency) || 0) + Number(o.amount || 0));
      }
      total.textContent = `${list.children.length}${sums.size ? ' · ' : ''}${[...sums].map(([cur, v]) => fmtMoney(v, cur)).join(' + ')}`;
    }
  }
  for (const o of opps) {
    const c = card(o);
    cards.set(String(o.id), { o, c });
    const col = cols.get(o.stage_id);
    if (col) col.list.append(c);
  }
  totals();

  async function moveTo(id, stageId) {
    const entry = cards.get(String(id));
    if (!entry || entry.o.stage_id === stageId) return;
    const from = cols.get(entry.o.stage_id);
    const to = cols.get(stageId);
    to.list.append(entry.c); // optimistic; put back on failure
    totals();
    try {
      const updated = await api(`/api/v1/opportunities/${id}`, { method: 'PATCH', body: { stage_id: stageId }, headers: { 'If-Match': etagOf(entry.o) } });
      entry.o = updated;
      entry.c.replaceWith(entry.c = card(updated));
      cards.set(String(id), entry);
      totals();
      entry.c.focus();
      toast(`${updated.name} → ${to.stage.name}`);
    } catch (e) {
      from.list.append(entry.c);
      totals();
      toast(e.status === 412 ? 'Changed by someone else meanwhile: reload the board' : e.message, 'error');
    }
  }
  return null;
}

// Rows grouped by currency: one chart per currency, amounts never added across currencies.
const byCurrency = (rows) => [...rows.reduce((m, r) => m.set(r.currency, [...(m.get(r.currency) || []), r]), new Map())];

export async function analyticsView(root) {
  root.append(h('h1', {}, 'Pipeline analytics'));
  try {
    const st = await api('/api/v1/analytics/pipeline/stages');
    // open stages only (won and lost deals are no pipeline), each in every currency's chart;
    // a stage without deals comes as one row of the default currency and is no currency of its own
    const open = st.items.filter((r) => !r.is_won && !r.is_lost);
    const stages = [...new Set(open.map((r) => r.stage))];
    const currencies = byCurrency(open.filter((r) => r.count > 0));
    root.append(h('h2', {}, 'Open pipeline by stage'),
      ...(currencies.length ? currencies.map(([cur, rows]) => barChart(stages.map((name) => {
        const r = rows.find((x) => x.stage === name);
        return { label: name, values: [r ? r.amount : 0, r ? r.weighted_amount : 0] };
      }), ['amount', 'weighted'], { unit: cur, title: `Open pipeline (${cur})` })) : [h('p', { class: 'muted' }, 'No open deals in this pipeline: new opportunities appear here by stage.')]));
  } catch (e) { root.append(errorBox(e)); }
  try {
    const fc = await api(`/api/v1/analytics/pipeline/forecast${q({})}`);
    root.append(h('h2', {}, 'Forecast by close month'),
      ...byCurrency(fc.items).map(([cur, rows]) => barChart(rows.map((r) => ({ label: r.month, values: [r.open_amount, r.weighted_amount, r.won_amount] })), ['open', 'weighted', 'won'], { unit: cur, title: `Forecast (${cur})` })));
  } catch (e) { root.append(errorBox(e)); }
  try {
    const ow = await api('/api/v1/analytics/pipeline/owners');
    const keys = ow.items.length ? Object.keys(ow.items[0]).filter((k) => k !== 'owner_id' && k !== 'owner_name') : [];
    const money = (k) => /amount|revenue|value/.test(k);
    const fmt = (r, k) => (r[k] === null || r[k] === undefined ? '—' : money(k) ? Number(r[k]).toLocaleString() : typeof r[k] === 'number' && !Number.isInteger(r[k]) ? r[k].toFixed(2) : String(r[k]));
    root.append(h('h2', {}, 'By owner'), ow.items.length ? h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Owner'), keys.map((k) => h('th', { scope: 'col' }, human(k))))),
      h('tbody', {}, ow.items.map((r) => h('tr', {}, h('td', {}, r.owner_name || 'unassigned'), keys.map((k) => h('td', {}, fmt(r, k)))))))
      : h('p', { class: 'empty' }, 'No opportunities yet.'));
  } catch (e) { root.append(errorBox(e)); }
  return null;
}
