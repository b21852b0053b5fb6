// @ts-check
// The fleet: health per equipment model, one device's health and commands (with their
// state from the device's acks), a ping, and one-time enrolment tokens for managers.
import { api } from './api.js';
import { h, toast, errorBox, fmtTime, table } from './ui.js';
import { deviceCommands, rolloutsPanel } from './fieldops.js';

/** @param {string} id */
const devPath = (id) => `/api/v1/devices/${encodeURIComponent(id)}`;

/** @param {HTMLElement} root @param {any} session */
export async function fleetView(root, _args, session) {
  root.append(h('h1', {}, 'Fleet'));
  const models = h('div', { id: 'fleet-models' });
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
  root.append(models, detail);
  const manages = role === 'admin' || role === 'manager';
  detail.dataset.manages = manages ? 'yes' : 'no';
  if (manages) void rolloutsPanel(root);
  try {
    const r = await api('/api/v1/fleet/health?window_h=24');
    models.append(h('h2', {}, 'Per equipment model (last 24 h)'), table([
      { key: 'equipment_model', label: 'Model' },
      { key: 'devices', label: 'Devices' },
      { key: 'online', label: 'Online' },
      { key: 'messages_per_hour', label: 'Messages/h' },
      { key: 'alerts_per_device_day', label: 'Alerts/device-day' },
      { label: 'MTBF (h)', render: (m) => (m.mtbf_h === null ? '—' : m.mtbf_h) },
      { label: 'Firmware', render: (m) => Object.entries(m.firmware).map(([v, n]) => `${v}: ${n}`).join(', ') },
      { label: 'Last seen', render: (m) => fmtTime(m.last_seen) },
    ], r.models));
  } catch (e) { models.append(errorBox(e)); }
  return null;
}

/** @param {HTMLElement} root @param {string} id */
async function showDevice(root, id) {
  root.replaceChildren(h('h2', {}, `Device ${id}`));
  try {
    const d = await api(`${devPath(id)}/health`);
    root.append(h('p', { class: 'muted' },
      `${d.online ? 'online' : 'offline'} · up ${Math.round(d.uptime_s)} s · last seen ${fmtTime(d.last_seen) || 'never'}`,
      ` · ${d.messages_per_hour} messages/h · firmware ${d.firmware || 'unknown'} · ${d.enrolment || 'not enrolled'}`));
    const ping = h('button', { type: 'button' }, 'Ping');
    ping.addEventListener('click', async () => {
      try {
        await api(`${devPath(id)}/commands`, { method: 'POST', body: { name: 'ping' } });
        showDevice(root, id);
      } catch (e) { toast(e.message, 'error'); }
    });
    const cmds = await api(`${devPath(id)}/commands?limit=20`);
    root.append(h('p', {}, ping));
    if (root.dataset.manages === 'yes') root.append(deviceCommands(id, () => showDevice(root, id)));
    root.append(table([
      { key: 'name', label: 'Command' },
      { key: 'state', label: 'State' },
      { key: 'detail', label: 'Detail' },
      { label: 'Sent', render: (c) => fmtTime(c.created_at) },
      { label: 'Finished', render: (c) => fmtTime(c.finished_at) },
    ], cmds.items));
  } catch (e) { root.append(errorBox(e)); }
}
