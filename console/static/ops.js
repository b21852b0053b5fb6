// @ts-check
// Operations: live alerts feed with acknowledgement, work orders board by status,
// device page with telemetry charts from server-side bucketed aggregates.
import { api, listAll, q } from './api.js';
import { h, errorBox, toast, fmtTime, readInstant, badAddress } from './ui.js';
import { lineChart } from './chart.js';
import { connectLive, alertFromRow } from './live.js';
import { entityMeta, labels } from './fields.js';
import { makeMap } from './leaflet.js';

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
  // the time an alert's link centres on (#/device/ID/TIME): one that is no time is said,
  // never shown as the last hours
  const named = around ? readInstant(around) : null;
  if (typeof named === 'string') {
    root.append(badAddress('time', around, named, `#/device/${encodeURIComponent(id)}`, 'The device\'s latest telemetry'));
    return null;
  }
  let dev;
  try { dev = await api(`/api/v1/devices/${encodeURIComponent(id)}`); } catch (e) { root.append(errorBox(e)); return null; }
  // name, model, site and online state (judged from the newest stored message) from the map's API
  const pos = (await api(`/console/api/positions${q({ device_id: id })}`).catch(() => ({ devices: [] }))).devices.find((d) => d.device_id === id) || {};
  // the device's own name, else its id with its model: many devices share a model, and a
  // page titled "pump-p200" did not say which one it was
  title.textContent = pos.name || (pos.equipment_model ? `${id} · ${pos.equipment_model}` : `Device ${id}`);
  const rules = pos.equipment_model ? (await api('/api/v1/alert-rules').catch(() => ({ items: [] }))).items.filter((r) => r.equipment_model === pos.equipment_model && r.kind === 'threshold') : [];
  const at = named ? new Date(named) : null;
  const metrics = Object.keys(dev.latest || {});
  const online = pos.online ?? dev.online;
  root.append(h('p', { class: 'muted', id: 'device-state' },
    online === null || online === undefined ? 'no data yet' : `${online ? 'online' : 'offline'}${pos.last_seen_ms ? ` · last message ${fmtTime(new Date(pos.last_seen_ms).toISOString())}` : ''}`,
    pos.account_name ? [' · at ', h('a', { href: `#/r/accounts/${pos.account_id}` }, pos.account_name)] : '',
    dev.firmware ? ` · firmware ${dev.firmware}` : ''),
  metrics.length ? h('table', { class: 'grid latest', id: 'latest' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Metric'), h('th', { scope: 'col' }, 'Latest'), h('th', { scope: 'col' }, 'At'))),
    h('tbody', {}, Object.entries(dev.latest).map(([m, x]) => h('tr', {}, h('td', {}, metricName(m)), h('td', {}, `${Number(Number(x.value).toPrecision(4))} ${unitOf(m)}`), h('td', {}, fmtTime(x.time))))))
    : h('p', { class: 'muted' }, 'No telemetry from this device yet.'),
  at ? h('p', { id: 'around' }, `Centred on the alert at ${fmtTime(at)} (red line).`) : '');
  const range = h('select', { 'aria-label': 'Range', id: 'range' }, [['1h', 3600], ['6h', 21600], ['24h', 86400], ['7d', 604800]].map(([l, s]) => h('option', { value: s, selected: s === (at ? 3600 : 21600) }, l)));
  // the charts' (and the track's) window: a span ending at `end`; the buttons zoom and pan.
  // A device silent for longer than the span opens on its last data, not on an empty chart.
  const newest = Math.max(0, ...Object.values(dev.latest || {}).map((x) => +new Date(x.time)).filter(Number.isFinite));
  const endFor = (span) => (at ? +at + (span * 1000) / 2
    : newest && newest < Date.now() - span * 1000 ? Math.min(Date.now(), newest + span * 100) : Date.now());
  const view = { span: Number(range.value), end: endFor(Number(range.value)) };
  const windowLabel = h('span', { class: 'muted', id: 'chart-window', 'aria-live': 'polite' });
  const move = (fn) => () => { fn(); draw(); };
  const zoom = h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Chart window' },
    h('button', { type: 'button', id: 'zoom-in', onclick: move(() => { view.end -= (view.span * 1000) / 4; view.span = Math.max(300, view.span / 2); }) }, 'Zoom in'),
    h('button', { type: 'button', id: 'zoom-out', onclick: move(() => { view.end = Math.min(Date.now(), view.end + (view.span * 1000) / 2); view.span = Math.min(31 * 86400, view.span * 2); }) }, 'Zoom out'),
    h('button', { type: 'button', id: 'pan-earlier', onclick: move(() => { view.end -= (view.span * 1000) / 2; }) }, 'Earlier'),
    h('button', { type: 'button', id: 'pan-later', onclick: move(() => { view.end = Math.min(Date.now(), view.end + (view.span * 1000) / 2); }) }, 'Later'),
    windowLabel);
  const charts = h('div', { id: 'charts' });
  root.append(h('div', { class: 'toolbar' }, h('label', {}, 'Range', range), zoom), charts);
  // where the device is: its GPS track over the window, or its site
  const place = devicePosition(id, pos);
  async function draw() {
    charts.replaceChildren();
    document.body.dataset.charts = 'drawing';
    const span = view.span;
    const end = new Date(view.end);
    const from = new Date(+end - span * 1000);
    windowLabel.textContent = `${fmtTime(from.toISOString())} – ${fmtTime(end.toISOString())}`;
    const bucket = Math.max(1, Math.round(span / 200));
    for (const metric of metrics) {
      try {
        const r = await api(`/api/v1/devices/${encodeURIComponent(id)}/telemetry${q({ metric, from: from.toISOString(), to: end.toISOString(), bucket_s: bucket })}`);
        const pts = r.buckets.map((b) => ({ t: new Date(b.start), avg: Number(b.avg), min: Number(b.min), max: Number(b.max) }));
        const thresholds = rules.filter((r) => r.metric === metric).map((r) => ({ value: r.limit, label: `${r.severity} ${r.direction}` }));
        charts.append(h('h2', {}, metricName(metric)), lineChart(pts, { title: metricName(metric), unit: unitOf(metric), from, to: end, mark: at, thresholds }));
      } catch (e) { charts.append(errorBox(e)); }
    }
    await place.show(from, end);
    document.body.dataset.charts = 'ready';
  }
  range.addEventListener('change', () => { view.span = Number(range.value); view.end = endFor(view.span); draw(); });
  // beside the charts: where it is, the device's alerts, its site's open work orders, its commands
  const side = h('div', { class: 'related-grid', id: 'device-related' }, place.box);
  root.append(side);
  await draw();
  const parts = await Promise.all([deviceAlerts(id), pos.account_id ? siteWorkOrders(pos.account_id) : null, deviceCommands(id, session), deviceArLink(id, session)]);
  side.append(...parts.filter((x) => x !== null));
  return null;
}

/** The equipment in 3D (AR on a phone): its page takes no console sign-in (a link cannot
 *  carry the console's token), so a manager makes a share link here (POST /api/v1/ar/shares,
 *  valid a week), to open or to send to a customer or a technician. */
function deviceArLink(id, session) {
  if (!session.me || !['admin', 'manager'].includes(session.me.role)) return null;
  const out = h('div', { id: 'ar-link', 'aria-live': 'polite' });
  const make = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', id: 'ar-link-make' }, 'Make an AR link'));
  make.addEventListener('click', async () => {
    make.disabled = true;
    try {
      const s = await api('/api/v1/ar/shares', { method: 'POST', body: { device_id: id, expires_in_s: 7 * 86400 } });
      out.replaceChildren(
        h('p', {}, h('a', { href: s.url, target: '_blank', rel: 'noopener', id: 'ar-link-open' }, 'Open the AR view'), ` · valid until ${fmtTime(s.share.expires_at)}`),
        h('input', { id: 'ar-link-url', readonly: true, value: s.url, 'aria-label': 'AR link to copy', onfocus: (e) => e.target.select() }));
    } catch (e) { out.replaceChildren(errorBox(e)); } finally { make.disabled = false; }
  });
  return h('section', { class: 'related', id: 'device-ar' }, h('h2', {}, 'AR view'),
    h('p', { class: 'muted' }, 'This equipment in 3D, on a phone in augmented reality: anyone with the link sees this one scene for a week.'), make, out);
}

/** A small map of where the device is: its GPS fixes over the charts' window drawn as a
 *  track ending at the newest, or else its newest position (a phone's last fix, equipment
 *  at its account's site). No position at all: the section says so. */
function devicePosition(id, pos) {
  const box = h('section', { class: 'related', id: 'device-position' }, h('h2', {}, 'Position'));
  const note = h('p', { class: 'muted', id: 'device-position-note' });
  const el = h('div', { id: 'device-map', class: 'map small-map', role: 'region', 'aria-label': 'Device position map' });
  box.append(el, note);
  let made = null;
  /** @type {LeafletBounds | null} */
  let framed = null;
  return {
    box,
    async show(from, to) {
      let tr = { t_ms: [], lon: [], lat: [] };
      try {
        tr = await api(`/console/api/track${q({ device_id: id, from: from.toISOString(), to: to.toISOString() })}`);
      } catch (e) { note.textContent = e.message; }
      const has = pos.lon !== null && pos.lon !== undefined && pos.lat !== null && pos.lat !== undefined;
      if (!tr.t_ms.length && !has) {
        el.hidden = true;
        el.dataset.kind = 'none';
        note.textContent = 'This device reports no position, and its site has no location.';
        return;
      }
      el.hidden = false;
      if (!made) {
        let m;
        try { m = await makeMap(el, tr.t_ms.length ? [tr.lat[tr.lat.length - 1], tr.lon[tr.lon.length - 1]] : [pos.lat, pos.lon], 13); } catch (e) { note.textContent = e.message; return; }
        // its own pane above the basemap (whose land canvas may arrive after the track)
        m.map.createPane('devicetrack').style.zIndex = '450';
        made = { ...m, renderer: m.L.svg({ pane: 'devicetrack' }), layer: m.L.featureGroup().addTo(m.map) };
        // the box narrows when the page's other sections arrive: keep what was framed in view
        const { map: lm } = made;
        const watch = new ResizeObserver(() => {
          if (!el.isConnected) { watch.disconnect(); return; } // the page was left
          const c = lm.getCenter();
          lm.invalidateSize();
          if (framed) lm.fitBounds(framed, { maxZoom: 16, animate: false }); else lm.setView(c, lm.getZoom(), { animate: false });
        });
        watch.observe(el);
      }
      made.map.invalidateSize();
      const { L, map, layer, renderer } = made;
      const pane = { pane: 'devicetrack', renderer };
      layer.clearLayers();
      if (tr.t_ms.length) {
        const lls = tr.lat.map((lat, i) => [lat, tr.lon[i]]);
        const last = lls[lls.length - 1];
        if (lls.length > 1) L.polyline(lls, { ...pane, color: '#8250df', weight: 3, opacity: 0.85 }).addTo(layer);
        L.circleMarker(last, { ...pane, radius: 7, color: '#fff', weight: 2, fillColor: '#8250df', fillOpacity: 1 })
          .bindTooltip(`newest fix ${fmtTime(new Date(tr.t_ms[tr.t_ms.length - 1]).toISOString())}`).addTo(layer);
        framed = L.latLngBounds(lls).pad(0.2);
        map.fitBounds(framed, { maxZoom: 16, animate: false });
        el.dataset.kind = 'track';
        el.dataset.points = String(lls.length);
        note.textContent = `${lls.length} GPS fixes in the window; the dot is the newest.`;
      } else {
        const where = pos.kind === 'phone' ? 'last known position' : `site${pos.account_name ? ` of ${pos.account_name}` : ''}`;
        L.circleMarker([pos.lat, pos.lon], { ...pane, radius: 7, color: '#fff', weight: 2, fillColor: '#0969da', fillOpacity: 1 }).bindTooltip(where).addTo(layer);
        framed = null;
        map.setView([pos.lat, pos.lon], 13, { animate: false });
        el.dataset.kind = pos.kind === 'phone' ? 'last' : 'site';
        el.dataset.points = '0';
        note.textContent = pos.kind === 'phone'
          ? `No GPS fix in the window; the dot is the last known position${pos.t_ms ? ` (${fmtTime(new Date(pos.t_ms).toISOString())})` : ''}.`
          : `The device reports no position; the dot is its ${where}.`;
      }
    },
  };
}

/** The device's alerts, newest first, with their state; each opens the alerts screen. */
async function deviceAlerts(id) {
  const box = h('section', { class: 'related', id: 'device-alerts' }, h('h2', {}, 'Alerts'));
  try {
    const page = await api(`/api/v1/alerts${q({ state: 'all', device_id: id })}`);
    box.append(page.items.length ? h('ul', {}, page.items.slice(0, 20).map((a) => h('li', { dataset: { state: a.state } },
      `${a.severity || ''} · ${alertTitle(a.alert_type)} · ${a.state} · ${fmtTime(a.raised_at)}`)))
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
