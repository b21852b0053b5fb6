// Operations: alerts feed (when the maintenance API exists), work orders board by status,
// device page with telemetry charts from server-side bucketed aggregates.
import { api, listAll, q } from './api.js';
import { h, errorBox, toast, fmtTime } from './ui.js';
import { lineChart } from './chart.js';

const WO_STATUSES = ['new', 'assigned', 'scheduled', 'in_progress', 'done', 'cancelled'];

export async function alertsView(root) {
  root.append(h('h1', {}, 'Alerts'));
  let page;
  try { page = await api('/api/v1/alerts'); } catch (e) {
    if (e.status === 404 || e.status === 405) { root.append(h('p', { class: 'muted' }, 'No alerts API on this server yet (maintenance not installed).')); return null; }
    root.append(errorBox(e)); return null;
  }
  const items = page.items || page.alerts || [];
  const list = h('ul', { id: 'alerts' });
  root.append(list);
  for (const a of items) {
    const ack = h('button', { type: 'button', disabled: Boolean(a.acknowledged_at) }, a.acknowledged_at ? 'Acknowledged' : 'Acknowledge');
    ack.addEventListener('click', async () => {
      try { await api(`/api/v1/alerts/${a.id}/ack`, { method: 'POST', headers: { 'Idempotency-Key': crypto.randomUUID() } }); ack.textContent = 'Acknowledged'; ack.disabled = true; } catch (e) { toast(e.message, 'error'); }
    });
    list.append(h('li', {}, h('strong', {}, a.severity || ''), ' ', a.message || a.title || a.kind || '', ' ', h('span', { class: 'muted' }, fmtTime(a.created_at || a.at)), ' ',
      a.device_id ? h('a', { href: `#/device/${encodeURIComponent(a.device_id)}/${encodeURIComponent(a.created_at || a.at || '')}` }, 'telemetry') : null, ' ', ack));
  }
  if (!items.length) root.append(h('p', { class: 'muted' }, 'No alerts.'));
  return null;
}

export async function workOrdersView(root) {
  root.append(h('h1', {}, 'Work orders'));
  let wos;
  try { wos = await listAll('/api/v1/work_orders', {}, 2000); } catch (e) { root.append(errorBox(e)); return null; }
  const board = h('div', { class: 'board' });
  for (const s of WO_STATUSES) {
    const mine = wos.filter((w) => w.status === s);
    board.append(h('section', { class: 'column', 'aria-label': s }, h('h2', {}, h('span', {}, s.replace('_', ' ')), h('span', { class: 'muted' }, mine.length)),
      mine.map((w) => h('article', { class: 'card', tabindex: 0 }, h('strong', {}, w.title), h('div', { class: 'muted' }, `${w.priority}${w.sla_due_at ? ` · SLA ${fmtTime(w.sla_due_at)}` : ''}`),
        h('a', { href: `#/account/${w.account_id}` }, 'account')))));
  }
  root.append(board);
  return null;
}

export async function deviceView(root, [id, around]) {
  root.append(h('h1', {}, `Device ${id}`));
  let dev;
  try { dev = await api(`/api/v1/devices/${encodeURIComponent(id)}`); } catch (e) { root.append(errorBox(e)); return null; }
  root.append(h('pre', { class: 'muted' }, JSON.stringify(dev, null, 1).slice(0, 1200)));
  const end = around ? new Date(+new Date(around) + 6 * 3600e3) : new Date();
  const range = h('select', { 'aria-label': 'Range' }, [['1h', 3600], ['6h', 21600], ['24h', 86400], ['7d', 604800]].map(([l, s]) => h('option', { value: s, selected: s === 21600 }, l)));
  const charts = h('div', {});
  root.append(h('div', { class: 'toolbar' }, h('label', {}, 'Range', range)), charts);
  const metrics = (dev.latest || dev.metrics || []).map((m) => m.metric || m).filter((m) => typeof m === 'string');
  async function draw() {
    charts.replaceChildren();
    const span = Number(range.value);
    const from = new Date(+end - span * 1000);
    const bucket = Math.max(10, Math.round(span / 200));
    for (const metric of metrics.length ? metrics : ['']) {
      try {
        const r = await api(`/api/v1/devices/${encodeURIComponent(id)}/telemetry${q({ metric, from: from.toISOString(), to: end.toISOString(), bucket_s: bucket })}`);
        const pts = (r.buckets || r.items || r.points || []).map((b) => ({ t: new Date(b.bucket || b.t || b.time), avg: Number(b.avg ?? b.value), min: b.min !== undefined ? Number(b.min) : undefined, max: b.max !== undefined ? Number(b.max) : undefined }));
        charts.append(h('h2', {}, metric || r.metric || 'telemetry'), lineChart(pts, { title: metric }));
      } catch (e) { charts.append(errorBox(e)); }
    }
  }
  range.addEventListener('change', draw);
  draw();
  return null;
}
