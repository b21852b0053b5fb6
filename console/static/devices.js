// @ts-check
// The fleet: health per equipment model, one device's health and commands (with their
// state from the device's acks), a ping, and one-time enrolment tokens for managers.
import { api } from './api.js';
import { h, toast, errorBox, fmtTime, table, scrollBox } from './ui.js';
import { deviceCommands, rolloutsPanel } from './fieldops.js';

const num = (x) => (x === null || x === undefined ? '—' : Number(x).toLocaleString(undefined, { maximumFractionDigits: 1 }));

/** @param {string} id */
const devPath = (id) => `/api/v1/devices/${encodeURIComponent(id)}`;

/** A wide table scrolls sideways inside its own keyboard-reachable box (390 px phones).
 * @param {string} label @param {HTMLElement} t */

/** @param {HTMLElement} root @param {any} session */
export async function fleetView(root, _args, session) {
  root.append(h('h1', {}, 'Fleet'));
  const models = h('div', { id: 'fleet-models' });
  const list = h('div', { id: 'fleet-devices' });
  const detail = h('div', { id: 'fleet-device' });
  const lookup = /** @type {HTMLInputElement} */ (h('input', { name: 'device', placeholder: 'device id', 'aria-label': 'Device id' }));
  const form = h('form', { class: 'toolbar' }, lookup, h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (e) => { e.preventDefault(); if (lookup.value.trim()) showDevice(detail, lookup.value.trim()); });
  root.append(form);
  const role = session && session.me ? session.me.role : '';
  if (role === 'admin' || role === 'manager') {
    const out = h('code', { id: 'enrol-token' });
    const btn = h('button', { type: 'button' }, 'New enrolment token');
    btn.addEventListener('click', async () => {
      try {
        const t = await api('/api/v1/enrolment-tokens', { method: 'POST', body: {} });
        out.textContent = `${t.token} (single use, expires ${fmtTime(t.expires_at)})`;
      } catch (e) { toast(e.message, 'error'); }
    });
    root.append(h('p', {}, btn, ' ', out));
  }
  root.append(models, detail, list);
  const manages = role === 'admin' || role === 'manager';
  detail.dataset.manages = manages ? 'yes' : 'no';
  if (manages) void rolloutsPanel(root);
  try {
    const r = await api('/api/v1/fleet/health?window_h=24');
    models.append(h('h2', {}, 'Per equipment model (last 24 h)'), scrollBox('Per equipment model', {}, table([
      { key: 'equipment_model', label: 'Model' },
      { key: 'devices', label: 'Devices' },
      { key: 'online', label: 'Online' },
      { label: 'Messages/h', render: (m) => num(m.messages_per_hour) },
      { label: 'Alerts/device-day', render: (m) => num(m.alerts_per_device_day) },
      { label: 'MTBF (h)', render: (m) => (m.mtbf_h === null ? '—' : num(m.mtbf_h)) },
      { label: 'Firmware', render: (m) => Object.entries(m.firmware).map(([v, n]) => `${v}: ${n}`).join(', ') },
      { label: 'Last seen', render: (m) => fmtTime(m.last_seen) },
    ], r.models)));
  } catch (e) { models.append(errorBox(e)); }
  await deviceList(list, detail);
  return null;
}

/** The devices the caller may see (equipment first page), filterable; a row opens its health.
 * @param {HTMLElement} root @param {HTMLElement} detail */
async function deviceList(root, detail) {
  root.append(h('h2', {}, 'Devices'));
  const filter = /** @type {HTMLInputElement} */ (h('input', { type: 'search', placeholder: 'Filter by id or name', 'aria-label': 'Filter devices' }));
  const body = h('div', {});
  root.append(filter, body);
  let rows = [];
  const draw = () => {
    const f = filter.value.trim().toLowerCase();
    const shown = rows.filter((d) => !f || d.device_id.toLowerCase().includes(f) || (d.name || '').toLowerCase().includes(f));
    body.replaceChildren(shown.length ? scrollBox('Devices', {}, table([
      { label: 'Device', render: (d) => h('a', { href: `#/device/${encodeURIComponent(d.device_id)}` }, d.device_id) },
      { label: 'Name', render: (d) => d.name || '—' },
      // online/offline is the server's one definition (telemetry.online); the time is when the
      // server received the device's newest message, shown in the user's zone
      { label: 'Status', render: (d) => (d.online ? 'online' : d.online === false ? 'offline' : 'no data yet') },
      { label: 'Last message', render: (d) => fmtTime(d.last_seen) || '—' },
      { label: 'Firmware', render: (d) => d.firmware || '—' },
    ], shown.slice(0, 200), (d) => { void showDevice(detail, d.device_id); detail.scrollIntoView({ block: 'start' }); }))
      : h('p', { class: 'muted' }, 'No device matches.'));
  };
  filter.addEventListener('input', draw);
  try {
    rows = (await api('/api/v1/devices?kind=equipment&limit=1000')).items;
    draw();
  } catch (e) { body.append(errorBox(e)); }
}

/** @param {HTMLElement} root @param {string} id */
async function showDevice(root, id) {
  root.replaceChildren(h('h2', {}, `Device ${id}`));
  try {
    const d = await api(`${devPath(id)}/health`);
    root.append(h('p', { class: 'muted' },
      `${d.online ? 'online' : d.online === false ? 'offline' : 'no data yet'} · up ${Math.round(d.uptime_s)} s · last seen ${fmtTime(d.last_seen) || 'never'}`,
      ` · ${d.messages_per_hour} messages/h · firmware ${d.firmware || 'unknown'} · ${d.enrolment || 'not enrolled'}`));
    const ping = h('button', { type: 'button' }, 'Ping');
    ping.addEventListener('click', async () => {
      try {
        await api(`${devPath(id)}/commands`, { method: 'POST', body: { name: 'ping' } });
        showDevice(root, id);
      } catch (e) { toast(e.message, 'error'); }
    });
    const cmds = await api(`${devPath(id)}/commands?limit=20`);
    if (root.dataset.manages === 'yes') root.append(h('p', {}, ping)); // the API refuses other roles' commands (403)
    if (root.dataset.manages === 'yes') root.append(deviceCommands(id, () => showDevice(root, id)));
    root.append(scrollBox('Commands', {}, table([
      { key: 'name', label: 'Command' },
      { key: 'state', label: 'State' },
      { key: 'detail', label: 'Detail' },
      { label: 'Sent', render: (c) => fmtTime(c.created_at) },
      { label: 'Finished', render: (c) => fmtTime(c.finished_at) },
    ], cmds.items)));
  } catch (e) { root.append(errorBox(e)); }
}
