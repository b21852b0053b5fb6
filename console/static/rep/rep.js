// @ts-check
// The rep's phone view: today's stops (every stop of my route in the plan's order, work
// orders and periodic visits, from /api/v1/phone/day), next stop with navigation links,
// check-in/out, checklist, parts used, notes, photos, completion with a signature; the
// shift (GPS from this phone, gps.js). Every action goes through the IndexedDB outbox (queue.js) and is sent, once,
// when the network is there. Stops follow today's routing plan when there is one (sequence
// and ETA from the routing API); automatic geofence check-ins and check-outs (geo visits)
// show on the stops and arrive live over the console's WebSocket. The assistant's big
// push-to-talk button (talk.js) says next stop, check in, done ... by voice.
import { api, signIn, token, etagOf, ApiError } from '/console/api.js';
import { connectLive } from '/console/live.js';
import { h, toast, fmtClock, setUserZone, present } from '/console/ui.js';
import { makeMap } from '/console/leaflet.js';
import { enqueue, flush, pending } from './queue.js';
import { Tracker } from './gps.js';
import { publicKey, sign as deviceSign, fromB64url } from './devicekey.js';
import { mountTalk } from './talk.js';

const state = { me: null, stops: [], visits: new Map(), planId: null, map: null, L: null, layer: null, live: null, refresh: null, focus: null, attachTarget: null, done: new Set(JSON.parse(localStorage.getItem('fm.rep.done') || '[]')) };

async function start() {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('/console/rep/sw.js', { scope: '/console/rep/' }).catch((e) => console.warn('no offline support:', e.message));
    navigator.serviceWorker.addEventListener('message', onWorkerMessage);
  }
  addEventListener('hashchange', () => { focusFromHash(); render(); });
  focusFromHash();
  addEventListener('online', () => { showNet(); sendAll(); });
  addEventListener('offline', showNet);
  showNet();
  // "Sync now": send the outbox at once (also done on 'online' and after each action).
  document.getElementById('sync-now').addEventListener('click', () => { sendAll().catch((e) => console.info('sync stopped:', e.message)); });
  const signin = /** @type {HTMLFormElement} */ (document.getElementById('rep-signin'));
  signin.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(signin);
    try {
      state.me = await signIn(String(f.get('email')), String(f.get('password')));
      localStorage.setItem('fm.rep.me', JSON.stringify(state.me));
      signin.hidden = true;
    } catch (ex) { document.getElementById('rep-signin-error').textContent = ex.message; return; }
    await loadDay().catch(showLoadError);
  });
  if (token.get()) {
    try { state.me = await api('/api/v1/auth/me'); localStorage.setItem('fm.rep.me', JSON.stringify(state.me)); } catch (e) {
      if (e instanceof ApiError && e.status === 401) token.clear();
      else state.me = JSON.parse(localStorage.getItem('fm.rep.me') || 'null'); // offline: last known user
    }
  }
  if (!state.me) { document.getElementById('rep-signin').hidden = false; return; }
  await loadDay().catch(showLoadError);
  sendAll();
}

function showLoadError(e) {
  document.getElementById('view').prepend(h('p', { class: 'error', role: 'alert', id: 'load-error' }, `Could not load today's plan: ${e.message}`));
}

function showNet() {
  const n = document.getElementById('net');
  n.textContent = navigator.onLine ? 'online' : 'offline';
  n.classList.toggle('offline', !navigator.onLine);
  document.body.dataset.online = navigator.onLine ? 'yes' : 'no';
  pending().then((p) => { document.getElementById('outbox').textContent = p.length ? `${p.length} waiting to send` : ''; document.body.dataset.outbox = String(p.length); });
}

// Today's date ('YYYY-MM-DD') on the wall clock of `zone`. Plans are made for the rep's
// local day and the shift is read in the rep's zone, so the day is too (the phone's own
// clock may be set to another zone); UTC when the account names none, as the server does.
function dayIn(zone) {
  const opts = /** @type {const} */ ({ year: 'numeric', month: '2-digit', day: '2-digit' });
  let parts;
  try {
    parts = new Intl.DateTimeFormat('en-CA', { ...opts, timeZone: zone || 'UTC' }).formatToParts(new Date());
  } catch {
    parts = new Intl.DateTimeFormat('en-CA', opts).formatToParts(new Date());
  }
  const part = (t) => (parts.find((x) => x.type === t) || { value: '' }).value;
  return `${part('year')}-${part('month')}-${part('day')}`;
}
const today = () => dayIn(state.me && state.me.timezone);
// times in the rep's zone (users.timezone), as the console shows them and the plan is made
const hhmm = (iso) => (iso ? fmtClock(iso) : '');

// Automatic check-ins today (geo visits), newest per account.
async function loadVisits() {
  try {
    const { visits } = await api(`/console/api/visits?date=${today()}`);
    state.visits = new Map();
    for (const v of visits) if (String(v.rep_id) === String(state.me.user_id)) state.visits.set(v.account_id, v);
  } catch (e) { console.info('automatic check-ins not shown:', e.message); }
}

// The day from /api/v1/phone/day: every stop of my route in the newest plan's order (work
// orders and periodic account visits), then my open work orders the plan does not carry.
async function loadDay() {
  setUserZone(state.me && state.me.timezone);
  const day = await api(`/api/v1/phone/day?date=${today()}`);
  state.planId = day.plan_id;
  state.stops = day.stops;
  await loadVisits();
  document.getElementById('day').hidden = false;
  setupShift();
  setupPush();
  // the assistant: what is said refreshes the day (a voice check-in shows on the stop)
  mountTalk({ onChange: () => { if (navigator.onLine) loadDay().catch(() => undefined); } });
  document.body.dataset.planned = String(state.stops.filter((s) => s.seq !== null).length);
  await drawMap();
  render();
  // 'ready' once the stops are on screen (the map can take a moment offline)
  document.body.dataset.ready = 'yes';
  if (!state.live) state.live = connectLive(onLive, (st) => { document.body.dataset.live = st === 'live' ? 'yes' : 'no'; });
  showMyWeek();
  // ETAs move when the route is re-planned: look again every minute
  if (!state.refresh) state.refresh = setInterval(() => { if (navigator.onLine) loadDay().catch(() => undefined); }, 60_000);
}

// My last seven days (phone analytics): visits, time on site, travel, first-time fixes.
async function showMyWeek() {
  if (!navigator.onLine) return;
  try {
    const { reps } = await api(`/api/v1/phone/analytics?rep_id=${state.me.user_id}`);
    const r = reps[0];
    if (!r) return;
    const ftf = r.first_time_fix_rate === null ? '' : ` · first-time fix ${Math.round(r.first_time_fix_rate * 100)}%`;
    document.getElementById('my-week').textContent = `Last 7 days: ${r.visits} ${r.visits === 1 ? 'visit' : 'visits'} (${r.visits_per_day}/day), ${Math.round(r.time_on_site_s / 3600 * 10) / 10} h on site, ${Math.round(r.travel_m / 100) / 10} km${ftf}`;
  } catch (e) { console.info('no figures:', e.message); }
}

// ---------------------------------------------------------------- shift and GPS
// The phone reads its position only while the rep is on shift and has agreed to share it.
// The first shift registers this phone as the rep's field device (its own broker account).
const phoneKey = () => `fm.rep.phone.${state.me.user_id}`;
let tracker = /** @type {Tracker | null} */ (null);

function setupShift() {
  const consent = /** @type {HTMLInputElement} */ (document.getElementById('gps-consent'));
  const toggle = /** @type {HTMLButtonElement} */ (document.getElementById('shift-toggle'));
  if (toggle.dataset.wired) return;
  toggle.dataset.wired = 'yes';
  consent.checked = Boolean(localStorage.getItem('fm.rep.gpsConsent'));
  toggle.disabled = !consent.checked;
  consent.addEventListener('change', () => {
    if (consent.checked) localStorage.setItem('fm.rep.gpsConsent', new Date().toISOString());
    else { localStorage.removeItem('fm.rep.gpsConsent'); endShift(); }
    toggle.disabled = !consent.checked;
  });
  toggle.addEventListener('click', () => { if (tracker) endShift(); else startShift().catch((e) => toast(`Location not shared: ${e.message}`)); });
  if (consent.checked && localStorage.getItem('fm.rep.shift') === 'on') startShift().catch((e) => console.info('shift not resumed:', e.message));
}

// This phone's device id and broker connection: fetched (registering the phone the first
// time), cached for a start without network.
async function phoneConnection() {
  const cached = JSON.parse(localStorage.getItem(phoneKey()) || 'null');
  try {
    const conn = cached ? await api(`/api/v1/phone/devices/${encodeURIComponent(cached.device_id)}/connection`)
      : await api('/api/v1/phone/devices', { method: 'POST', body: { label: 'rep phone (web app)', public_key: await publicKey() } });
    localStorage.setItem(phoneKey(), JSON.stringify(conn));
    return conn;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) { localStorage.removeItem(phoneKey()); return phoneConnection(); }
    if (cached) return cached;
    throw e;
  }
}

// Minutes since midnight now, on the wall clock of `zone` (the rep's zone, not the phone's).
function minutesIn(zone) {
  let parts;
  try {
    parts = new Intl.DateTimeFormat('en-GB', { timeZone: zone || 'UTC', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(new Date());
  } catch {
    parts = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(new Date());
  }
  const part = (t) => Number((parts.find((x) => x.type === t) || { value: '0' }).value);
  return part('hour') * 60 + part('minute');
}

const hmToMin = (s) => { const [h, m] = s.split(':').map(Number); return h * 60 + m; };

// Location is shared from an hour before the shift starts to its end, in the rep's time
// zone; a shift may cross midnight (22:00-06:00), and equal start and end mean all day.
function offShiftNow(conn) {
  if (!conn.shift_end || !conn.shift_start) return false;
  const start = hmToMin(conn.shift_start);
  const end = hmToMin(conn.shift_end);
  if (start === end) return false;
  const from = (start - 60 + 1440) % 1440;
  const now = minutesIn(conn.timezone);
  const on = from <= end ? now >= from && now <= end : now >= from || now <= end;
  return !on;
}

async function startShift() {
  if (tracker) return;
  const conn = await phoneConnection();
  if (offShiftNow(conn)) {
    document.body.dataset.shift = 'outside-hours';
    toast(`Outside your shift (${conn.shift_start.slice(0, 5)}-${conn.shift_end.slice(0, 5)}): location is not shared`);
    return;
  }
  localStorage.setItem('fm.rep.shift', 'on');
  tracker = new Tracker(conn, showGps);
  document.body.dataset.phone = conn.device_id;
  await tracker.start();
  document.getElementById('shift-toggle').textContent = 'End shift';
  document.body.dataset.shift = 'on';
  // the shift ends by itself at the rep's shift end
  const check = setInterval(() => { if (!tracker) clearInterval(check); else if (offShiftNow(conn)) endShift(); }, 60_000);
}

function endShift() {
  localStorage.removeItem('fm.rep.shift');
  if (tracker) tracker.stop();
  tracker = null;
  document.getElementById('shift-toggle').textContent = 'Start shift';
  document.body.dataset.shift = 'off';
}

function showGps(s) {
  const el = document.getElementById('gps-state');
  el.textContent = !s.tracking ? 'Location off' : `Sharing location · ${s.connected ? 'connected' : 'offline'} · ${s.waiting} fix${s.waiting === 1 ? '' : 'es'} waiting`;
  document.body.dataset.gpsWaiting = String(s.waiting);
  document.body.dataset.gpsLink = s.connected ? 'up' : 'down';
}

// ---------------------------------------------------------------- push and screens
// Screens are hash routes: #wo/<id> (a work order), #stop/<key>, #day. A tapped push
// notification opens its link here (sw.js).
function focusFromHash() {
  const m = /^#(wo|stop)\/([A-Za-z0-9:]+)$/.exec(location.hash);
  state.focus = m ? (m[1] === 'wo' ? `wo:${m[2]}` : m[2]) : null;
  document.body.dataset.screen = m ? `${m[1]}/${m[2]}` : 'day';
}

function onWorkerMessage(ev) {
  const msg = ev.data || {};
  if (msg.type === 'open' && typeof msg.link === 'string') {
    const url = new URL(msg.link, location.origin);
    if (url.pathname === location.pathname) { location.hash = url.hash; if (navigator.onLine) loadDay().catch(() => undefined); } else location.assign(url.href);
  } else if (msg.type === 'push-shown') {
    document.body.dataset.lastPush = String(msg.id);
    if (msg.kind === 'route.replanned' || msg.kind === 'work_order.urgent') loadDay().catch(() => undefined);
  }
}

function b64urlToBytes(s) {
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

// This device's push subscription: the phone's device id names it (or a browser id).
async function enablePush() {
  if (!('PushManager' in window) || !('serviceWorker' in navigator)) throw new Error('this browser cannot receive push notifications');
  if ((await Notification.requestPermission()) !== 'granted') throw new Error('notifications are not allowed');
  const reg = await navigator.serviceWorker.ready;
  const { application_server_key: key } = await api('/api/v1/notifications/push/key');
  const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlToBytes(key) });
  let deviceKey = localStorage.getItem('fm.rep.pushDevice');
  if (!deviceKey) { deviceKey = `web-${crypto.randomUUID().slice(0, 18)}`; localStorage.setItem('fm.rep.pushDevice', deviceKey); }
  await api('/api/v1/notifications/push/subscriptions', { method: 'POST', body: { device_key: deviceKey, ...sub.toJSON() } });
  localStorage.setItem('fm.rep.push', 'on');
  document.body.dataset.push = 'on';
  document.getElementById('push-toggle').textContent = 'Notifications on';
}

function setupPush() {
  const btn = document.getElementById('push-toggle');
  if (btn.dataset.wired) return;
  btn.dataset.wired = 'yes';
  btn.addEventListener('click', () => { enablePush().then(() => toast('Notifications on')).catch((e) => toast(`Notifications off: ${e.message}`)); });
  if (localStorage.getItem('fm.rep.push') === 'on') { document.body.dataset.push = 'on'; btn.textContent = 'Notifications on'; }
}

// Geofence events of my phone: refresh the automatic check-ins and say what happened.
async function onLive(msg) {
  if (msg.k !== 'geo') return;
  await loadVisits();
  for (const [, , kind, , accountId] of msg.d) {
    const stop = state.stops.find((s) => s.account.id === accountId);
    const verb = { enter: 'Arrived at', dwell: 'Checked in at', exit: 'Left' }[kind] || kind;
    if (stop) toast(`${verb} ${stop.account.name} (geofence)`);
  }
  render();
}

function autoVisit(accountId) { return state.visits.get(accountId) || null; }

function autoState(accountId) {
  const v = autoVisit(accountId);
  if (!v) return null;
  return v.departed_at ? `checked out automatically ${hhmm(v.departed_at)}` : `checked in automatically ${hhmm(v.checked_in_at)}`;
}

async function drawMap() {
  if (!state.map) {
    const { L, map } = await makeMap(document.getElementById('rep-map'));
    state.L = L; state.map = map; state.layer = L.featureGroup().addTo(map);
  }
  const { L } = state;
  state.layer.clearLayers();
  const pts = [];
  state.stops.forEach((s, i) => {
    if (s.account.lon === null || s.account.lat === null) return;
    const ll = [s.account.lat, s.account.lon];
    pts.push(ll);
    L.circleMarker(ll, { radius: 9, color: s.work_order ? '#0969da' : '#8250df', fillOpacity: 0.8 }).bindTooltip(`${i + 1}. ${s.account.name}`, { permanent: true, direction: 'right' }).addTo(state.layer);
  });
  if (pts.length > 1) L.polyline(pts, { color: '#0969da', dashArray: '6 6' }).addTo(state.layer);
  if (pts.length) state.map.fitBounds(L.latLngBounds(pts).pad(0.3));
}

function navLinks(stop) {
  if (!stop.navigate_url) return [];
  return [h('a', { class: 'button', href: stop.navigate_url }, 'Navigate'),
    h('a', { class: 'button', href: stop.map_url, target: '_blank', rel: 'noopener' }, 'Map link')];
}

const title = (s) => (s.work_order ? s.work_order.title : 'Periodic visit');
const isDone = (s) => state.done.has(s.key) || s.completed || (s.work_order && s.work_order.status === 'done');
const minutes = (sec) => `${Math.round(sec / 60)} min`;

function render() {
  const list = document.getElementById('stops');
  list.replaceChildren(...state.stops.map((s, i) => h('li', {
    class: `${isDone(s) ? 'done' : ''}${s.key === state.focus ? ' focus' : ''}`,
    dataset: { stop: s.key, ...(s.work_order ? { wo: s.work_order.id } : {}), kind: s.work_order ? 'work_order' : 'visit', auto: autoVisit(s.account.id) ? (autoVisit(s.account.id).departed_at ? 'out' : 'in') : '' },
  },
  `${i + 1}. ${s.account.name} — ${title(s)}`,
  s.eta ? h('span', { class: 'muted eta' }, ` ETA ${hhmm(s.eta)}`) : h('span', { class: 'muted' }, ' (not in the plan)'),
  s.time_spent_s !== null ? h('span', { class: 'muted' }, ` · ${minutes(s.time_spent_s)} on site`) : null,
  autoState(s.account.id) ? h('span', { class: 'auto' }, ` · ${autoState(s.account.id)}`) : null)));
  const next = (state.focus && state.stops.find((s) => s.key === state.focus)) || state.stops.find((s) => !isDone(s));
  const box = document.getElementById('next');
  // "all done" only when there was something to do
  if (!next) { box.replaceChildren(h('p', { id: 'no-next' }, state.stops.length ? 'All stops done for today.' : 'No stops today: nothing is planned or assigned to you for this day.')); return; }
  const wo = next.work_order;
  const accountId = next.account.id;
  const note = h('textarea', { id: 'note', rows: 3, 'aria-label': 'Visit note' });
  const photo = h('input', { type: 'file', accept: 'image/*', capture: 'environment', id: 'photo', 'aria-label': 'Photo' });
  const sig = h('canvas', { class: 'signature', id: 'signature', width: 600, height: 140, 'aria-label': 'Customer signature' });
  signaturePad(sig);
  const signer = h('input', { id: 'signer', autocomplete: 'name', 'aria-label': 'Customer name' });
  const base = { account_id: accountId, ...(wo ? { work_order_id: wo.id } : {}), source: 'rep_app' };
  const stopPath = `/api/v1/phone/day/stops/${next.key}?date=${today()}`;
  const activity = (body) => ({ path: '/api/v1/activities', body: { ...base, ...body } });
  const record = (body) => ({ path: stopPath, body });
  // One outbox item per user action, however many requests it takes (sent in order).
  const act = (steps, label) => queue({ kind: 'batch', steps }, label);
  const auto = autoVisit(accountId);
  const checkedIn = Boolean(next.checkin_at) || Boolean(auto && !auto.departed_at);
  const parts = [...next.parts];
  const partName = h('input', { id: 'part-name', 'aria-label': 'Part used', placeholder: 'Part used' });
  const partQty = h('input', { id: 'part-qty', type: 'number', min: 1, value: 1, 'aria-label': 'Quantity' });
  box.replaceChildren(...present(
    h('h2', {}, `Next: ${next.account.name}`),
    h('p', {}, title(next), next.account.address ? h('span', { class: 'muted' }, ` · ${next.account.address}`) : null,
      next.eta ? h('span', { class: 'muted' }, ` · ETA ${hhmm(next.eta)} (plan ${state.planId})`) : null),
    auto ? h('p', { class: 'auto', id: 'auto-checkin', dataset: { state: auto.departed_at ? 'out' : 'in' } },
      auto.departed_at ? `Checked out automatically at ${hhmm(auto.departed_at)} (geofence, ${Math.round((auto.duration_s || 0) / 60)} min on site)`
        : `Checked in automatically at ${hhmm(auto.checked_in_at)} (geofence)`) : null,
    h('div', { class: 'actions' }, ...navLinks(next),
      h('button', { type: 'button', id: 'checkin', disabled: checkedIn, title: checkedIn ? 'already checked in' : null, onclick: () => {
        const at = new Date().toISOString();
        act([activity({ type: 'meeting', subject: `Check-in: ${title(next)}`, start_at: at }), record({ checkin_at: at })], 'checked in');
      } }, 'Check in'),
      h('button', { type: 'button', id: 'checkout', onclick: () => {
        const at = new Date().toISOString();
        act([activity({ type: 'meeting', subject: `Check-out: ${title(next)}`, status: 'done', end_at: at }), record({ checkout_at: at })], 'checked out');
      } }, 'Check out')),
    next.checklist.length ? h('fieldset', { id: 'checklist' }, h('legend', {}, `Checklist (${wo ? wo.type : 'visit'})`),
      ...next.checklist.map((c) => h('label', {}, h('input', { type: 'checkbox', checked: c.done, dataset: { item: c.item }, onchange: (e) => {
        act([record({ checklist: { [c.item]: e.target.checked } })], 'checklist saved');
      } }), ` ${c.item}`))) : null,
    h('fieldset', { id: 'parts' }, h('legend', {}, 'Parts used'),
      h('ul', { id: 'parts-list' }, ...parts.map((p) => h('li', {}, `${p.qty} × ${p.name}`))),
      partName, partQty,
      h('button', { type: 'button', id: 'add-part', onclick: () => {
        const name = partName.value.trim();
        if (!name) return;
        parts.push({ name, qty: Number(partQty.value) || 1 });
        next.parts = parts;
        act([record({ parts })], 'part recorded');
        render();
      } }, 'Add part')),
    h('label', {}, 'Note', note),
    h('button', { type: 'button', id: 'save-note', onclick: () => { if (note.value.trim()) { act([activity({ type: 'note', subject: 'Visit note', body: note.value.trim() })], 'note saved'); note.value = ''; } } }, 'Save note'),
    h('label', {}, 'Photo', photo),
    h('div', { id: 'attachments', class: 'attachments', role: 'group', 'aria-label': 'Photos and documents' }),
    h('label', {}, 'Customer name', signer),
    h('label', {}, 'Signature (or confirm below)', sig),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'primary', id: 'complete', onclick: async () => {
        const signed = sig.dataset.signed === 'yes';
        if (!signed && !confirm('Complete without a signature?')) return;
        await act([activity({ type: 'note', subject: `${wo ? 'Work order completed' : 'Visit done'}: ${title(next)}`, body: signed ? sig.toDataURL('image/png') : 'confirmed without signature', status: 'done' }),
          record({ completed: true })], 'completion recorded');
        // the signed service report is made once the work order is done (sent with it)
        const report = signed ? { work_order_id: wo && wo.id, signer_name: (signer.value || 'Customer').trim().slice(0, 120), signature_png: sig.toDataURL('image/png') } : null;
        if (wo) await queue({ kind: 'complete', path: `/api/v1/work_orders/${wo.id}`, id: wo.id, report }, 'work order done');
        state.done.add(next.key);
        localStorage.setItem('fm.rep.done', JSON.stringify([...state.done]));
        render();
      } }, wo ? 'Complete work order' : 'Visit done')),
  ));
  // A photo (or document) is a file attached to the stop: queued as it is (the server
  // checks its type by content, downscales it and makes the thumbnail), sent when online.
  photo.addEventListener('change', async () => {
    const f = photo.files[0];
    if (!f) return;
    const target = wo ? `work_order_id=${wo.id}` : `account_id=${accountId}`;
    await queue({ kind: 'upload', path: `/api/v1/phone/attachments?${target}&filename=${encodeURIComponent(f.name.slice(0, 200) || 'photo.jpg')}`, blob: f }, 'photo saved');
    photo.value = '';
  });
  state.attachTarget = wo ? `work_order_id=${wo.id}` : `account_id=${accountId}`;
  showAttachments(state.attachTarget);
}

// The stop's photos, as thumbnails (fetched with the token: an <img> cannot send it).
async function showAttachments(target) {
  const box = document.getElementById('attachments');
  if (!box || !navigator.onLine) return;
  try {
    const { items } = await api(`/api/v1/phone/attachments?${target}`);
    const imgs = await Promise.all(items.filter((a) => a.thumb_url).map(async (a) => {
      const r = await api(a.thumb_url, { raw: true });
      return h('img', { src: URL.createObjectURL(await r.blob()), alt: a.filename, dataset: { attachment: a.id }, width: 96 });
    }));
    const docs = items.filter((a) => !a.thumb_url).map((a) => h('span', { class: 'muted', dataset: { attachment: a.id } }, ` ${a.filename}`));
    box.replaceChildren(...imgs, ...docs);
  } catch (e) { console.info('attachments not shown:', e.message); }
}

async function queue(action, label) {
  await enqueue(action);
  toast(navigator.onLine ? label : `${label} (offline: will be sent)`);
  showNet();
  if (navigator.onLine) sendAll();
}

// The work-order life cycle (crm work_order_transitions) on the way to done.
const NEXT_STATUS = { new: 'assigned', assigned: 'in_progress', scheduled: 'in_progress', in_progress: 'done' };

let sending = null;
function sendAll() {
  if (!sending) sending = flush(send).finally(() => { sending = null; showNet(); });
  return sending;
}

// The service report of a completed work order: made by the server from what was recorded
// (PDF with the customer's signature), signed by this phone's key, anchored with the rep's.
async function sendReport(item) {
  const conn = await phoneConnection();
  const made = await api('/api/v1/phone/reports', { method: 'POST', body: item.report, headers: { 'Idempotency-Key': `${item.key}.report` } });
  const signature = await deviceSign(fromB64url(made.message));
  const out = await api(`/api/v1/phone/reports/${made.id}/sign`, { method: 'POST', body: { device_id: conn.device_id, signature } });
  toast(`Service report ${out.id} signed (${out.sha256.slice(0, 12)}…)`);
  document.body.dataset.report = String(out.id);
  return 'done';
}

// One outbox item -> 'done' when the server has answered it (success or a refusal, which is
// kept in the failed list), 'retry' when it may work later; throws on network failure.
// A batch sends its steps in order, each with its own Idempotency-Key derived from the
// item's, so a step answered before a failure is replayed, not stored twice.
async function send(item) {
  try {
    if (item.kind === 'post') {
      await api(item.path, { method: 'POST', body: item.body, headers: { 'Idempotency-Key': item.key } });
      return 'done';
    }
    if (item.kind === 'upload') {
      await api(item.path, { method: 'POST', body: item.blob, headers: { 'Idempotency-Key': item.key, 'Content-Type': 'application/octet-stream' } });
      if (state.attachTarget) showAttachments(state.attachTarget);
      return 'done';
    }
    if (item.kind === 'batch') {
      for (const [i, step] of item.steps.entries()) {
        await api(step.path, { method: 'POST', body: step.body, headers: { 'Idempotency-Key': `${item.key}.${i}` } });
      }
      return 'done';
    }
    if (item.kind === 'complete') {
      for (let i = 0; i < 5; i += 1) {
        const wo = await api(item.path);
        if (wo.status === 'done') return item.report ? sendReport(item) : 'done';
        const nextStatus = NEXT_STATUS[wo.status];
        if (!nextStatus) return `work order is ${wo.status}`;
        try { await api(item.path, { method: 'PATCH', body: { status: nextStatus }, headers: { 'If-Match': etagOf(wo) } }); } catch (e) { if (!(e instanceof ApiError) || e.status !== 412) throw e; }
      }
      return 'retry';
    }
    return `unknown action ${item.kind}`;
  } catch (e) {
    if (!(e instanceof ApiError)) throw e; // network: keep it
    if (e.status === 503 || e.status === 429 || e.status === 401 || e.status >= 500) return 'retry';
    return `${e.status} ${e.message}`;
  }
}

function signaturePad(c) {
  const ctx = c.getContext('2d');
  ctx.lineWidth = 2; ctx.lineCap = 'round';
  let down = false;
  const at = (e) => { const r = c.getBoundingClientRect(); return [(e.clientX - r.left) * (c.width / r.width), (e.clientY - r.top) * (c.height / r.height)]; };
  c.addEventListener('pointerdown', (e) => { down = true; c.setPointerCapture(e.pointerId); ctx.beginPath(); ctx.moveTo(...at(e)); });
  c.addEventListener('pointermove', (e) => { if (!down) return; ctx.lineTo(...at(e)); ctx.stroke(); c.dataset.signed = 'yes'; });
  c.addEventListener('pointerup', () => { down = false; });
}

start();
