// @ts-check
// Operations: live alerts feed with acknowledgement, work orders board by status,
// device page with telemetry charts from server-side bucketed aggregates.
import { api, listAll, q } from './api.js';
import { h, errorBox, toast, fmtTime } from './ui.js';
import { lineChart } from './chart.js';
import { connectLive, alertFromRow } from './live.js';
import { entityMeta, labels } from './fields.js';

// Units are part of the metric's name (firmware_sim.physics: temperature_c, pressure_bar ...).
const UNITS = [['_mm_s', 'mm/s'], ['_c', '°C'], ['_bar', 'bar'], ['_a', 'A'], ['_v', 'V'], ['_kw', 'kW'], ['_pct', '%'], ['_rpm', 'rpm'], ['_m', 'm'], ['_s', 's']];
export const unitOf = (metric) => (UNITS.find(([suffix]) => metric.endsWith(suffix)) || [null, ''])[1];
export const metricName = (metric) => {
  const u = UNITS.find(([suffix]) => metric.endsWith(suffix));
  const base = u ? metric.slice(0, -u[0].length) : metric;
  return base.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
};
// `vibration_mm_s:threshold:above` -> `Vibration too high`; other types by their words
export const alertTitle = (type) => {
  const [metric, kind, dir] = String(type || '').split(':');
  if (kind === 'threshold') return `${metricName(metric)} too ${dir === 'below' ? 'low' : 'high'}`;
  if (kind === 'rate_of_change') return `${metricName(metric)} ${dir === 'below' ? 'falling' : 'rising'} too fast`;
  if (type === 'anomaly') return 'Unusual behaviour';
  return String(type || '').replace(/[_:-]+/g, ' ').replace(/^./, (c) => c.toUpperCase());
};
const WO_STATUSES = ['new', 'assigned', 'scheduled', 'in_progress', 'done', 'cancelled'];

// Alerts: the API's list (active or all, optionally one device) kept live by the WebSocket
// feed (alerts raised, escalated or cleared by the gateway's alert stage); acknowledge in
// place; each alert opens its device's telemetry chart centred on the alert.
export async function alertsView(root, [device], session) {
  const mayAck = !!session?.me && session.me.role !== 'viewer'; // the API's Access.write
  root.append(h('h1', {}, device ? `Alerts of ${device}` : 'Alerts'));
  const which = h('select', { id: 'alert-state', 'aria-label': 'Which alerts' }, h('option', { value: 'active' }, 'Active'), h('option', { value: 'all' }, 'All (incl. cleared)'));
  const live = h('span', { class: 'live-state', role: 'status' }, 'connecting…');
  const list = h('ul', { id: 'alerts', class: 'alert-list' });
  const empty = h('p', { class: 'muted', id: 'alerts-empty' }, 'No alerts.');
  root.append(h('div', { class: 'toolbar' }, h('label', {}, 'Show', which), live), list, empty);
  const rows = new Map(); // alert_id -> li

  function item(a, fresh = false) {
    const ack = h('button', { type: 'button', class: 'ack', disabled: a.state !== 'raised' || !mayAck, title: mayAck ? undefined : 'Your role cannot acknowledge alerts' }, a.state === 'raised' ? 'Acknowledge' : a.state === 'acknowledged' ? 'Acknowledged' : 'Cleared');
    ack.addEventListener('click', async () => {
      ack.disabled = true;
      try {
        const r = await api(`/api/v1/alerts/${encodeURIComponent(a.alert_id)}/acknowledge`, { method: 'POST' });
        put({ ...a, ...r });
        toast(`alert on ${a.device_id} acknowledged`);
      } catch (e) { ack.disabled = false; toast(e.message, 'error'); }
    });
    const around = a.raised_at || '';
    return h('li', { dataset: { alertId: a.alert_id, state: a.state, device: a.device_id }, class: fresh ? 'new' : '' },
      h('span', { class: 'sev' }, a.severity || ''),
      h('strong', {}, alertTitle(a.alert_type)),
      h('span', {}, a.message || ''),
      h('span', { class: 'muted' }, `${a.device_id} · raised ${fmtTime(a.raised_at)}${a.occurrences > 1 ? ` · ×${a.occurrences}` : ''}`,
        a.acknowledged_by ? [' · acknowledged by ', typeof a.acknowledged_by === 'number' ? refLabel('users', a.acknowledged_by) : String(a.acknowledged_by)] : ''),
      h('a', { href: `#/device/${encodeURIComponent(a.device_id)}/${encodeURIComponent(around)}` }, 'Telemetry around the alert'),
      ack);
  }
  function put(a, fresh = false) {
    if (device && a.device_id !== device) return;
    const old = rows.get(a.alert_id);
    if (a.state === 'cleared' && which.value === 'active') { if (old) { old.remove(); rows.delete(a.alert_id); } empty.hidden = rows.size > 0; return; }
    const li = item(a, fresh);
    if (old) old.replaceWith(li); else list.prepend(li);
    rows.set(a.alert_id, li);
    empty.hidden = rows.size > 0;
  }
  async function load() {
    let page;
    try { page = await api(`/api/v1/alerts${q({ state: which.value, device_id: device })}`); } catch (e) { list.replaceChildren(errorBox(e)); return; }
    list.replaceChildren(); rows.clear();
    for (const a of page.items.slice().reverse()) put(a);
    empty.hidden = rows.size > 0;
    document.body.dataset.alerts = 'ready';
  }
  which.addEventListener('change', load);
  await load();
  const stop = connectLive((msg) => {
    if (msg.k !== 'alert') return;
    for (const row of msg.d) {
      put(alertFromRow(row), true);
    }
  }, (state) => { live.textContent = state === 'live' ? 'live' : 'reconnecting…'; live.dataset.state = state === 'live' ? 'live' : 'down'; });
  return stop;
}

export async function workOrdersView(root) {
  const meta = await entityMeta('work_orders');
  root.append(h('div', { class: 'toolbar' }, h('h1', {}, 'Work orders'), h('a', { href: '#/work_orders' }, 'List view'),
    meta.may_create ? h('a', { class: 'button primary', href: '#/new/work_orders' }, 'New work order') : null));
  let wos;
  try { wos = await listAll('/api/v1/work_orders', {}, 2000); } catch (e) { root.append(errorBox(e)); return null; }
  const board = h('div', { class: 'board', id: 'wo-board' });
  const now = Date.now();
  for (const s of WO_STATUSES) {
    const mine = wos.filter((w) => w.status === s);
    board.append(h('section', { class: 'column', 'aria-label': s.replace('_', ' ') }, h('h2', {}, h('span', {}, s.replace('_', ' ')), h('span', { class: 'muted' }, mine.length)),
      mine.map((w) => {
        const late = w.sla_due_at && !['done', 'cancelled'].includes(w.status) && +new Date(w.sla_due_at) < now;
        return h('a', { class: `card${late ? ' breach' : ''}`, href: `#/r/work_orders/${w.id}`, dataset: { wo: w.id } }, h('strong', {}, w.title),
          h('div', { class: 'muted' }, `${w.priority}${w.sla_due_at ? ` · SLA ${fmtTime(w.sla_due_at)}${late ? ' (breached)' : ''}` : ''}`),
          h('div', {}, refLabel('accounts', w.account_id), w.assignee_id ? [' · ', refLabel('users', w.assignee_id)] : ''));
      })));
  }
  root.append(wos.length ? board : h('p', { class: 'empty' }, 'No work orders yet.'));
  return null;
}

// A reference's name as plain text (inside a card that is itself a link).
function refLabel(entity, id) {
  const el = h('span', {}, '…');
  labels(entity, [id]).then((m) => { el.textContent = m.get(Number(id)) || 'not visible to you'; });
  return el;
}

// A device's telemetry over a chosen range, from server-side bucketed aggregates (~200
// buckets per chart). With `around` (an alert's time) the range is centred on it and marked.
export async function deviceView(root, [id, around], session) {
  const title = h('h1', {}, 'Device');
  root.append(title);
  let dev;
  try { dev = await api(`/api/v1/devices/${encodeURIComponent(id)}`); } catch (e) { root.append(errorBox(e)); return null; }
  // name, model, site and online state (judged from the newest stored message) from the map's API
  const pos = (await api('/console/api/positions').catch(() => ({ devices: [] }))).devices.find((d) => d.device_id === id) || {};
  title.textContent = pos.name || pos.equipment_model || `Device ${id}`;
  const rules = pos.equipment_model ? (await api('/api/v1/alert-rules').catch(() => ({ items: [] }))).items.filter((r) => r.equipment_model === pos.equipment_model && r.kind === 'threshold') : [];
  const at = around ? new Date(around) : null;
  const metrics = Object.keys(dev.latest || {});
  const online = pos.online ?? dev.online;
  root.append(h('p', { class: 'muted', id: 'device-state' },
    online === null || online === undefined ? 'no status reported yet' : `${online ? 'online' : 'offline'}${pos.last_seen_ms ? ` · last message ${fmtTime(new Date(pos.last_seen_ms).toISOString())}` : ''}`,
    pos.account_name ? [' · at ', h('a', { href: `#/r/accounts/${pos.account_id}` }, pos.account_name)] : '',
    dev.firmware ? ` · firmware ${dev.firmware}` : ''),
  metrics.length ? h('table', { class: 'grid latest', id: 'latest' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Metric'), h('th', { scope: 'col' }, 'Latest'), h('th', { scope: 'col' }, 'At'))),
    h('tbody', {}, Object.entries(dev.latest).map(([m, x]) => h('tr', {}, h('td', {}, metricName(m)), h('td', {}, `${Number(Number(x.value).toPrecision(4))} ${unitOf(m)}`), h('td', {}, fmtTime(x.time))))))
    : h('p', { class: 'muted' }, 'No telemetry from this device yet.'),
  at ? h('p', { id: 'around' }, `Centred on the alert at ${fmtTime(at)} (red line).`) : null);
  const range = h('select', { 'aria-label': 'Range', id: 'range' }, [['1h', 3600], ['6h', 21600], ['24h', 86400], ['7d', 604800]].map(([l, s]) => h('option', { value: s, selected: s === (at ? 3600 : 21600) }, l)));
  const charts = h('div', { id: 'charts' });
  root.append(h('div', { class: 'toolbar' }, h('label', {}, 'Range', range)), charts);
  async function draw() {
    charts.replaceChildren();
    const span = Number(range.value);
    const end = at ? new Date(+at + (span * 1000) / 2) : new Date();
    const from = new Date(+end - span * 1000);
    const bucket = Math.max(1, Math.round(span / 200));
    if (!metrics.length) charts.append(h('p', { class: 'muted' }, 'No telemetry from this device yet.'));
    for (const metric of metrics) {
      try {
        const r = await api(`/api/v1/devices/${encodeURIComponent(id)}/telemetry${q({ metric, from: from.toISOString(), to: end.toISOString(), bucket_s: bucket })}`);
        const pts = r.buckets.map((b) => ({ t: new Date(b.start), avg: Number(b.avg), min: Number(b.min), max: Number(b.max) }));
        const thresholds = rules.filter((r) => r.metric === metric).map((r) => ({ value: r.limit, label: `${r.severity} ${r.direction}` }));
        charts.append(h('h2', {}, metricName(metric)), lineChart(pts, { title: metricName(metric), unit: unitOf(metric), from, to: end, mark: at, thresholds }));
      } catch (e) { charts.append(errorBox(e)); }
    }
    document.body.dataset.charts = 'ready';
  }
  range.addEventListener('change', draw);
  await draw();
  // beside the charts: the device's alerts, its site's open work orders, its commands
  const side = h('div', { class: 'related-grid', id: 'device-related' });
  root.append(side);
  const parts = await Promise.all([deviceAlerts(id), pos.account_id ? siteWorkOrders(pos.account_id) : null, deviceCommands(id, session)]);
  side.append(...parts.filter((x) => x !== null));
  return null;
}

/** The device's alerts, newest first, with their state; each opens the alerts screen. */
async function deviceAlerts(id) {
  const box = h('section', { class: 'related', id: 'device-alerts' }, h('h2', {}, 'Alerts'));
  try {
    const page = await api(`/api/v1/alerts${q({ state: 'all', device_id: id })}`);
    box.append(page.items.length ? h('ul', {}, page.items.slice(0, 20).map((a) => h('li', { dataset: { state: a.state } },
      `${a.severity || ''} · ${(a.alert_type || '').replace(/[_-]+/g, ' ')} · ${a.state} · ${fmtTime(a.raised_at)}`)))
      : h('p', { class: 'empty' }, 'No alerts from this device.'),
    h('a', { href: `#/alerts/${encodeURIComponent(id)}` }, 'All its alerts, live'));
  } catch (e) { box.append(errorBox(e)); }
  return box;
}

/** The open work orders at the device's site. */
async function siteWorkOrders(accountId) {
  const box = h('section', { class: 'related', id: 'device-work-orders' }, h('h2', {}, 'Open work orders at this site'));
  try {
    const filter = { and: [{ field: 'account_id', op: 'eq', value: accountId }, { field: 'status', op: 'in', value: ['new', 'assigned', 'scheduled', 'in_progress'] }] };
    const page = await api(`/api/v1/work_orders${q({ filter, limit: 20 })}`);
    box.append(page.items.length ? h('ul', {}, page.items.map((w) => h('li', {}, h('a', { href: `#/r/work_orders/${w.id}` }, w.title), ` · ${w.status.replace(/_/g, ' ')} · ${w.priority}`)))
      : h('p', { class: 'empty' }, 'No open work orders at this site.'));
  } catch (e) { box.append(errorBox(e)); }
  return box;
}

const COMMAND_PENDING = new Set(['sent']);

/** The device's commands with the state its ack gave; ping, reboot and a sampling interval
 *  for the roles the API lets send them (managers and admins). */
async function deviceCommands(id, session) {
  const box = h('section', { class: 'related', id: 'device-commands' }, h('h2', {}, 'Commands'));
  const list = h('ul', { id: 'command-list' });
  const err = h('p', { class: 'field-error', role: 'alert', id: 'command-error' });
  const mayCommand = ['admin', 'manager'].includes(session?.me?.role);
  let timer = 0;
  async function load() {
    try {
      const r = await api(`/api/v1/devices/${encodeURIComponent(id)}/commands${q({ limit: 10 })}`);
      list.replaceChildren(...(r.items.length ? r.items.map((c) => h('li', { dataset: { state: c.state, name: c.name } },
        h('strong', {}, c.name), ` · ${c.state.replace(/_/g, ' ')} · sent ${fmtTime(c.created_at)}`,
        c.finished_at ? ` · answered ${fmtTime(c.finished_at)}` : '', c.detail ? ` · ${c.detail}` : '')) : [h('li', { class: 'muted' }, 'No commands sent yet.')]));
      clearTimeout(timer);
      if (r.items.some((c) => COMMAND_PENDING.has(c.state)) && box.isConnected) timer = window.setTimeout(load, 2000);
    } catch (e) { list.replaceChildren(h('li', {}, errorBox(e))); }
  }
  async function send(name, args) {
    err.textContent = '';
    try { await api(`/api/v1/devices/${encodeURIComponent(id)}/commands`, { method: 'POST', body: { name, args } }); await load(); } catch (e) { err.textContent = e.message; }
  }
  if (mayCommand) {
    const interval = /** @type {HTMLInputElement} */ (h('input', { id: 'cmd-interval', type: 'number', min: 0.1, step: 0.1, value: 10, 'aria-label': 'Sampling interval in seconds' }));
    box.append(h('div', { class: 'toolbar' },
      h('button', { type: 'button', id: 'cmd-ping', onclick: () => send('ping', {}) }, 'Ping'),
      h('button', { type: 'button', id: 'cmd-reboot', onclick: () => { if (confirm('Reboot this device?')) send('reboot', {}); } }, 'Reboot'),
      h('label', { for: 'cmd-interval' }, 'Sampling interval (s)', interval),
      h('button', { type: 'button', id: 'cmd-config', onclick: () => send('config', { sample_interval_s: Number(interval.value) }) }, 'Send config')), err);
  }
  box.append(list);
  await load();
  return box;
}
