// @ts-check
// Field work in the console: the reps' phone analytics, a record's photos and documents
// from the phone, device commands beyond ping, firmware images and staged rollouts.
import { api, q, listAll } from './api.js';
import { h, toast, errorBox, fmtTime, table, scrollBox, fieldMessages } from './ui.js';
import { friendly } from './fields.js';

const hours = (s) => (s / 3600).toFixed(1);
const km = (m) => (m / 1000).toFixed(1);
const pct = (x) => (x === null || x === undefined ? '—' : `${Math.round(x * 100)} %`);
const isoDay = (d) => d.toISOString().slice(0, 10);

/** A wide table scrolls sideways inside its own keyboard-reachable box (390 px phones).
 * @param {string} label @param {HTMLElement} t */

/** Per rep: visits a day, time on site, travel, first-time fix; one rep's days on click.
 * @param {HTMLElement} root */
export async function fieldworkView(root) {
  root.append(h('h1', {}, 'Field work'));
  const to = new Date();
  const from = new Date(to.getTime() - 6 * 86400e3);
  const fromIn = /** @type {HTMLInputElement} */ (h('input', { type: 'date', name: 'from', value: isoDay(from) }));
  const toIn = /** @type {HTMLInputElement} */ (h('input', { type: 'date', name: 'to', value: isoDay(to) }));
  const form = h('form', { class: 'toolbar', 'aria-label': 'Period' },
    h('label', {}, 'From ', fromIn), h('label', {}, 'To ', toIn), h('button', { type: 'submit' }, 'Show'));
  const out = h('div', { id: 'fieldwork-table' });
  const days = h('div', { id: 'fieldwork-days' });
  root.append(form, out, days);
  /** @type {Record<number, string>} */
  const names = {};
  try {
    for (const u of await listAll('/api/v1/users', { sort: 'name' }, 1000)) names[u.id] = u.name || u.email;
  } catch { /* a rep sees only themselves: ids stay as they are */ }
  const load = async () => {
    out.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    out.setAttribute('aria-busy', 'true');
    days.replaceChildren();
    try {
      const r = await api(`/api/v1/phone/analytics${q({ from: fromIn.value, to: toIn.value })}`);
      const rows = r.reps.map((x) => ({ ...x, name: names[x.rep_id] || `Rep ${x.rep_id}` }));
      out.replaceChildren(rows.length ? scrollBox('Field work per rep', {}, table([
        { key: 'name', label: 'Rep' },
        { key: 'days_active', label: 'Days active' },
        { key: 'visits', label: 'Visits' },
        { label: 'Visits/day', render: (x) => x.visits_per_day.toFixed(1) },
        { label: 'On site (h)', render: (x) => hours(x.time_on_site_s) },
        { label: 'Travel (km)', render: (x) => km(x.travel_m) },
        { label: 'Driving (h)', render: (x) => hours(x.travel_s) },
        { key: 'work_orders_done', label: 'Work orders done' },
        { label: 'First-time fix', render: (x) => pct(x.first_time_fix_rate) },
      ], rows, (x) => {
        days.replaceChildren(h('h2', {}, `${x.name}, day by day`), scrollBox(`${x.name}, day by day`, {}, table([
          { key: 'day', label: 'Day' },
          { key: 'visits', label: 'Visits' },
          { label: 'On site (h)', render: (d) => hours(d.time_on_site_s) },
          { label: 'Travel (km)', render: (d) => km(d.travel_m) },
          { label: 'Driving (h)', render: (d) => hours(d.travel_s) },
        ], x.daily)));
      })) : h('p', { class: 'muted' }, 'No field work in this period.'));
    } catch (e) { out.replaceChildren(errorBox(e)); }
    out.setAttribute('aria-busy', 'false');
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); void load(); });
  await load();
  return null;
}

/** Photos and documents captured on the phone for an account or a work order.
 * @param {{account_id?: number|string, work_order_id?: number|string}} owner */
export function attachmentsPanel(owner) {
  const box = h('section', { class: 'attachments', 'aria-label': 'Photos and documents' },
    h('h2', {}, 'Photos and documents'));
  const urls = [];
  (async () => {
    try {
      const r = await api(`/api/v1/phone/attachments${q(owner)}`);
      if (!r.items.length) { box.append(h('p', { class: 'muted' }, 'Nothing attached from the phone yet.')); return; }
      const grid = h('ul', { class: 'thumbs' });
      for (const a of r.items) {
        const open = h('button', { type: 'button', class: 'linkish', title: `${a.filename} · ${fmtTime(a.created_at)}` }, a.filename);
        open.addEventListener('click', async () => {
          try {
            const res = await api(a.url, { raw: true });
            if (!res.ok) throw new Error(`${res.status}`);
            const url = URL.createObjectURL(await res.blob());
            urls.push(url);
            window.open(url, '_blank', 'noopener');
          } catch (e) { toast(`Cannot open ${a.filename}: ${e.message}`, 'error'); }
        });
        const li = h('li', { dataset: { kind: a.kind } });
        if (a.thumb_url) {
          const img = /** @type {HTMLImageElement} */ (h('img', { alt: a.filename, width: 128, height: 128, loading: 'lazy' }));
          li.append(img);
          api(a.thumb_url, { raw: true }).then(async (res) => {
            if (!res.ok) return;
            const url = URL.createObjectURL(await res.blob());
            urls.push(url);
            img.src = url;
          }).catch(() => {});
        } else {
          li.append(h('span', { class: 'doc-icon', 'aria-hidden': 'true' }, a.kind === 'report' ? 'PDF ✓' : 'PDF'));
        }
        li.append(open, h('small', { class: 'muted' }, `${a.kind} · ${fmtTime(a.created_at)}`));
        grid.append(li);
      }
      box.append(grid);
    } catch (e) { box.append(errorBox(e)); }
  })();
  // blob URLs are released when the panel leaves the page
  new MutationObserver((_m, obs) => {
    if (!box.isConnected && box.dataset.mounted) { urls.forEach((u) => URL.revokeObjectURL(u)); obs.disconnect(); }
    if (box.isConnected) box.dataset.mounted = '1';
  }).observe(document.body, { childList: true, subtree: true });
  return box;
}

/** Config, reboot and OTA forms for one device (managers and admins); `done` redraws.
 * @param {string} id @param {() => void} done */
export function deviceCommands(id, done) {
  const path = `/api/v1/devices/${encodeURIComponent(id)}/commands`;
  /** @param {string} name @param {any} args @param {(e: any) => boolean} [onField] shows a refused argument on its field */
  const send = async (name, args, onField = () => false) => {
    try {
      await api(path, { method: 'POST', body: { name, args } });
      toast(`${name} sent to ${id}; its state changes when the device acknowledges`);
      done();
    } catch (e) { if (!onField(e)) toast(e.message, 'error'); }
  };
  // the interval's problems are said beside it (it was the browser's own bubble, and a
  // refused one a toast): the API's bounds (0.1 s to a day) are the device's
  const interval = /** @type {HTMLInputElement} */ (h('input', { type: 'number', id: 'device-config-interval', min: 0.1, max: 86400, step: 'any', value: 10, name: 'sample_interval_s' }));
  const config = /** @type {HTMLFormElement} */ (h('form', { class: 'toolbar', 'aria-label': 'Configure' }));
  const msgs = fieldMessages(config);
  config.append(h('label', {}, 'Sample every ', interval, ' s'), h('button', { type: 'submit' }, 'Send config'), msgs.slot(interval));
  config.addEventListener('submit', (e) => {
    e.preventDefault();
    msgs.clear();
    if (interval.validity.badInput || !interval.value.trim()) { msgs.mark(interval, interval.validity.badInput ? 'must be a number of seconds' : 'is required'); return; }
    void send('config', { sample_interval_s: Number(interval.value) }, (ex) => {
      if (ex.field !== 'args.sample_interval_s') return false;
      msgs.mark(interval, `must be ${friendly(ex.message, ex.field)}`);
      return true;
    });
  });
  const reboot = h('button', { type: 'button' }, 'Reboot');
  reboot.addEventListener('click', () => { if (confirm(`Reboot ${id}?`)) void send('reboot', {}); });
  const image = /** @type {HTMLSelectElement} */ (h('select', { name: 'sha256', 'aria-label': 'Firmware image' }, h('option', { value: '' }, 'Choose an image')));
  const ota = h('form', { class: 'toolbar', 'aria-label': 'Update firmware' }, image, h('button', { type: 'submit' }, 'Update'));
  ota.addEventListener('submit', (e) => {
    e.preventDefault();
    if (image.value && confirm(`Install ${image.selectedOptions[0].textContent} on ${id}?`)) void send('ota', { sha256: image.value });
  });
  api('/api/v1/firmware?limit=200').then((r) => {
    for (const f of r.items) image.append(h('option', { value: f.sha256 }, `${f.equipment_model} ${f.version}`));
  }).catch(() => { ota.hidden = true; });
  return h('div', { class: 'device-commands' }, config, h('p', {}, reboot), ota);
}

/** Firmware images, rollouts with their progress, and a form to start one (managers).
 * @param {HTMLElement} root */
export async function rolloutsPanel(root) {
  const box = h('section', { id: 'rollouts', 'aria-label': 'Firmware rollouts' }, h('h2', {}, 'Firmware rollouts'));
  root.append(box);
  const body = h('div', {});
  const image = /** @type {HTMLSelectElement} */ (h('select', { name: 'sha256', id: 'rollout-image', 'aria-label': 'Image' }));
  const percent = /** @type {HTMLInputElement} */ (h('input', { type: 'number', name: 'percent', id: 'rollout-percent', min: 1, max: 100, step: 'any', value: 10 }));
  const group = /** @type {HTMLInputElement} */ (h('input', { name: 'device_group', id: 'rollout-device_group', placeholder: 'all groups' }));
  // what is wrong with the share or the group is said beside it (it was the browser's own
  // bubble, and a refused value a toast)
  const start = /** @type {HTMLFormElement} */ (h('form', { class: 'toolbar', 'aria-label': 'Start a rollout' }));
  const msgs = fieldMessages(start);
  start.append(image, h('label', {}, percent, ' % of devices'), h('label', {}, 'Group ', group), h('button', { type: 'submit' }, 'Start rollout'),
    msgs.slot(image), msgs.slot(percent), msgs.slot(group));
  box.append(start, body);
  const draw = async () => {
    try {
      const [imgs, rs] = await Promise.all([api('/api/v1/firmware?limit=200'), api('/api/v1/rollouts?limit=20')]);
      image.replaceChildren(...imgs.items.map((f) => h('option', { value: f.sha256 }, `${f.equipment_model} ${f.version} (${Math.round(f.size_bytes / 1024)} KiB)`)));
      start.hidden = !imgs.items.length;
      body.replaceChildren(rs.items.length ? scrollBox('Rollouts', {}, table([
        { key: 'id', label: '#' },
        { label: 'Image', render: (r) => `${r.equipment_model} · ${r.sha256.slice(0, 10)}…` },
        { label: 'Target', render: (r) => `${r.percent} %${r.device_group ? ` of ${r.device_group}` : ''}` },
        { key: 'state', label: 'State' },
        { label: 'Progress', render: (r) => `${r.succeeded} ok · ${r.failed} failed · ${r.sent} in flight · ${r.pending} waiting` },
        { key: 'reason', label: 'Reason' },
        { label: 'Started', render: (r) => fmtTime(r.created_at) },
        { label: '', render: (r) => actions(r) },
      ], rs.items)) : h('p', { class: 'muted' }, 'No rollout yet.'));
    } catch (e) { body.replaceChildren(errorBox(e)); }
  };
  const actions = (r) => {
    if (r.state !== 'running' && r.state !== 'completed') return '';
    const widen = h('button', { type: 'button' }, 'Widen');
    widen.addEventListener('click', async () => {
      const to = Number(prompt(`Widen rollout ${r.id} from ${r.percent} % to (%):`, String(Math.min(100, r.percent * 2))));
      if (!to) return;
      try { await api(`/api/v1/rollouts/${r.id}/widen`, { method: 'POST', body: { percent: to } }); await draw(); } catch (e) { toast(e.message, 'error'); }
    });
    const cancel = h('button', { type: 'button' }, 'Cancel');
    cancel.addEventListener('click', async () => {
      if (!confirm(`Stop rollout ${r.id}? Devices already updated keep their image.`)) return;
      try { await api(`/api/v1/rollouts/${r.id}/cancel`, { method: 'POST' }); await draw(); } catch (e) { toast(e.message, 'error'); }
    });
    return r.state === 'running' ? h('span', {}, widen, ' ', cancel) : widen;
  };
  start.addEventListener('submit', async (e) => {
    e.preventDefault();
    msgs.clear();
    if (percent.validity.badInput || !percent.value.trim()) { msgs.mark(percent, percent.validity.badInput ? 'must be a number' : 'is required'); return; }
    try {
      await api('/api/v1/rollouts', { method: 'POST', body: { sha256: image.value, percent: Number(percent.value), device_group: group.value.trim() || null } });
      toast('Rollout started: the first wave is on its way');
      await draw();
    } catch (err) {
      const el = { sha256: image, percent, device_group: group }[err.field];
      if (el) msgs.mark(el, friendly(err.message, err.field)); else toast(err.message, 'error');
    }
  });
  await draw();
  const timer = setInterval(() => { if (box.isConnected) void draw(); else clearInterval(timer); }, 10000);
}

/** Customer segments (insights: K-means named by profile): size, revenue, growth, churn
 * and lifetime value over the accounts one may see; a segment lists its accounts.
 * @param {HTMLElement} root @param {string[]} args */
export async function segmentsView(root, [segment]) {
  root.append(h('h1', {}, 'Customer segments'));
  const money = (x) => Number(x).toLocaleString(undefined, { maximumFractionDigits: 0 });
  try {
    const r = await api(`/api/v1/insights/segments${q({ segment })}`);
    if (!r.items.length) {
      root.append(h('p', { class: 'muted' }, 'No segments yet: they are computed with the nightly churn scoring once an account churn model is trained.'));
      return null;
    }
    root.append(scrollBox('Segments', {}, table([
      { label: 'Segment', render: (x) => h('a', { href: `#/segments/${encodeURIComponent(x.segment)}` }, x.segment) },
      { key: 'accounts', label: 'Accounts' },
      { key: 'atypical', label: 'Atypical' },
      { label: 'Won, last year', render: (x) => money(x.yearly_revenue) },
      { label: 'Growth', render: (x) => (x.revenue_growth === null ? '—' : pct(x.revenue_growth)) },
      { label: 'Mean churn risk', render: (x) => pct(x.mean_churn) },
      { label: 'Mean lifetime value', render: (x) => money(x.mean_clv) },
    ], r.items)));
    if (segment && r.members) {
      root.append(h('h2', {}, `Accounts in “${segment}”`));
      const names = new Map();
      for (let i = 0; i < r.members.length; i += 100) {
        const part = r.members.slice(i, i + 100);
        const rows = await listAll('/api/v1/accounts', { filter: { field: 'id', op: 'in', value: part } }, 100);
        for (const a of rows) names.set(a.id, a.name);
      }
      root.append(r.members.length ? h('ul', { id: 'segment-members' }, r.members.map((id) => h('li', {}, h('a', { href: `#/r/accounts/${id}` }, names.get(id) || `Account ${id}`))))
        : h('p', { class: 'muted' }, 'No account of this segment is visible to you.'));
    }
  } catch (e) { root.append(errorBox(e)); }
  return null;
}
