// @ts-check
// Live map: territories, geofences, account sites, devices and reps moving in real time
// (WebSocket /console/live), coloured by state (red while a device has an active alert);
// equipment at its account's site; the day's routes per rep with stops and ETAs (routing
// API); click-through; drawing of fences/territories.
import { api } from './api.js';
import { connectLive } from './live.js';
import { makeMap, loadClustering } from './leaflet.js';
import { h, toast, errorBox, fmtTime, fmtClock, userDay, present } from './ui.js';
import { startDrawing } from './draw.js';
import { labels, refLink } from './fields.js';

const COLORS = { online: '#1a7f37', offline: '#6e7781', alert: '#cf222e', phone: '#0969da' };
const ROUTE_COLORS = ['#0969da', '#8250df', '#bf3989', '#1a7f37', '#9a6700', '#cf222e', '#0550ae', '#6639ba', '#953800', '#116329'];
const hhmm = (iso) => (iso ? fmtClock(iso) : '');
// Fix-to-marker latency as standard User Timing measures (the benchmark and production
// monitoring read them with a PerformanceObserver); cleared past this many so a page left
// open for days does not grow.
const LATENCY = 'fm:fix-to-marker';
const MAX_LAT_SAMPLES = 50000;
let latencySamples = 0;

/** markercluster's own icon (a count in a circle, sized by it), named for a screen reader:
 *  a keyboard reaches each cluster as a button that read out only "6". */
function clusterIcon(L) {
  return (cluster) => {
    const n = cluster.getChildCount();
    const icon = L.divIcon({ html: `<div><span>${n}</span></div>`, className: `marker-cluster marker-cluster-${n < 10 ? 'small' : n < 100 ? 'medium' : 'large'}`, iconSize: L.point(40, 40) });
    const create = icon.createIcon.bind(icon);
    icon.createIcon = (old) => { const el = create(old); el.setAttribute('aria-label', `${n} account sites: zoom in`); return el; };
    return icon;
  };
}

export async function mapView(root, _args, session) {
  const mayFence = !!session.me && ['admin', 'manager'].includes(session.me.role);
  const drawState = h('span', { class: 'muted', id: 'draw-state', role: 'status' });
  const status = h('span', { class: 'live-state', role: 'status' }, 'connecting…');
  const legend = h('div', { class: 'legend' },
    ...Object.entries({ online: 'online', offline: 'offline', alert: 'alert' }).map(([k, v]) =>
      h('span', {}, h('i', { style: `background:${COLORS[k]}` }), v)),
    // the other marks on the map: a rep's phone (blue ring) and an account's site
    h('span', {}, h('i', { style: `background:#fff;border:2px solid ${COLORS.phone};box-sizing:border-box` }), "rep's phone"),
    h('span', {}, h('i', { class: 'site-icon' }), 'account site'));
  const tools = h('div', { class: 'toolbar' },
    // fences are drawn by managers and admins (the geo API's Access.managers)
    mayFence ? h('button', { type: 'button', id: 'draw-polygon' }, 'Draw polygon fence') : null,
    mayFence ? h('button', { type: 'button', id: 'draw-circle' }, 'Draw circle fence') : null,
    session.me && session.me.role === 'admin' ? h('button', { type: 'button', id: 'draw-territory' }, 'Draw territory') : null,
    legend, status, drawState);
  const el = h('div', { id: 'map', class: 'map', role: 'application', 'aria-label': 'Live map' });
  const side = h('aside', { class: 'side', id: 'map-side', 'aria-live': 'polite' }, h('p', {}, 'Click a marker or shape for details.'));
  // The devices and today's routes as lists beside the map (keyboard and screen-reader
  // access to what the canvas draws): one row per marker, kept current by the live feed.
  const deviceCount = h('span', { id: 'device-count' }, '0');
  const deviceList = h('ul', { id: 'device-list', class: 'device-list' });
  const routeList = h('ul', { id: 'route-list', class: 'route-list' });
  const deviceFilter = /** @type {HTMLInputElement} */ (h('input', { type: 'search', id: 'device-filter', placeholder: 'Filter devices', 'aria-label': 'Filter devices' }));
  deviceFilter.addEventListener('input', () => {
    const t = deviceFilter.value.trim().toLowerCase();
    for (const li of deviceList.children) /** @type {HTMLElement} */ (li).hidden = !!t && !`${li.textContent} ${/** @type {HTMLElement} */ (li).dataset.deviceId}`.toLowerCase().includes(t);
  });
  const lists = h('div', { class: 'map-lists' },
    h('details', { open: true }, h('summary', {}, 'Devices (', deviceCount, ')'), deviceFilter, deviceList),
    h('details', {}, h('summary', {}, "Today's routes"), routeList));
  root.append(tools, h('div', { class: 'map-wrap' }, el, side), lists);
  const { map, bases } = await makeMap(el);
  const L = await loadClustering();
  const layers = {
    territories: L.featureGroup().addTo(map),
    fences: L.featureGroup().addTo(map),
    // thousands of accounts: clustered, a count per cluster, split as the map zooms in
    sites: L.markerClusterGroup({ chunkedLoading: true, showCoverageOnHover: false, maxClusterRadius: 50, iconCreateFunction: clusterIcon(L) }).addTo(map),
    routes: L.featureGroup().addTo(map),
    devices: L.featureGroup().addTo(map),
  };
  L.control.layers(bases, { Territories: layers.territories, Geofences: layers.fences, 'Account sites': layers.sites, "Today's routes": layers.routes, Devices: layers.devices }).addTo(map);
  /**
   * @typedef {object} DeviceOnMap
   * @property {string} id
   * @property {LeafletCircleMarker} marker
   * @property {HTMLLIElement} row its line in the device list
   * @property {boolean} online
   * @property {'phone' | 'equipment'} kind
   * @property {{id: number, name: string}} [account]
   * @property {string} [model]
   * @property {string} [name]
   */
  /** @type {Map<string, DeviceOnMap>} */
  const markers = new Map();
  const alerting = new Map(); // device_id -> Map(alert_id -> state), active alerts only

  const show = (...nodes) => side.replaceChildren(...present(nodes));
  const inAlert = (id) => (alerting.get(id)?.size || 0) > 0;
  const colorOf = (d) => (inAlert(d.id) ? COLORS.alert : d.online === false ? COLORS.offline : COLORS.online);
  const stateOf = (d) => (inAlert(d.id) ? 'alert' : d.online === false ? 'offline' : 'online');
  /** @param {DeviceOnMap} d */
  const paint = (d) => {
    const color = colorOf(d);
    const st = stateOf(d);
    d.marker.setStyle({ fillColor: color });
    if (d.row.dataset.state === st) return;
    d.row.dataset.state = st;
    /** @type {HTMLElement} */ (d.row.firstElementChild).style.background = color;
    d.row.lastChild.textContent = ` ${d.name || d.id}${d.kind === 'phone' ? ' (phone)' : ''}: ${st}`;
  };
  /** @param {DeviceOnMap} d */
  const place = (d) => { const { lat, lng } = d.marker.getLatLng(); d.row.dataset.lonlat = `${lng},${lat}`; };

  function deviceDetails(d) {
    const alerts = [...(alerting.get(d.id) || new Map()).values()];
    return [h('h2', {}, d.name || d.id), d.name ? h('p', { class: 'muted' }, d.id) : null,
      h('p', {}, `${d.kind}${d.model ? ` (${d.model})` : ''}, ${d.online === false ? 'offline' : 'online'}`),
      d.account ? h('p', {}, 'At ', h('a', { href: `#/account/${d.account.id}` }, d.account.name)) : null,
      alerts.length ? h('p', { class: 'error' }, `${alerts.length} active alert(s): `, h('a', { href: `#/alerts/${encodeURIComponent(d.id)}` }, 'see alerts')) : null,
      h('p', {}, h('a', { href: `#/device/${encodeURIComponent(d.id)}` }, 'Device page and telemetry')),
      replayControls(d.id)];
  }

  // History replay: the device's (or rep phone's) GPS track over a chosen period, drawn as a
  // line with a marker that plays it back; times in the browser's time zone.
  const replayLayer = L.featureGroup().addTo(map);
  let replayTimer;
  function replayControls(deviceId) {
    const period = h('select', { id: 'replay-period', 'aria-label': 'Replay period' }, [['1 hour', 3600], ['6 hours', 21600], ['24 hours', 86400], ['7 days', 604800]].map(([l, v]) => h('option', { value: v, selected: v === 21600 }, `last ${l}`)));
    const out = h('div', { id: 'replay', 'aria-live': 'polite' });
    const go = h('button', { type: 'button', id: 'replay-load' }, 'Replay track');
    go.addEventListener('click', async () => {
      clearInterval(replayTimer);
      replayLayer.clearLayers();
      const to = new Date();
      const from = new Date(+to - Number(/** @type {HTMLSelectElement} */ (period).value) * 1000);
      let tr;
      try { tr = await api(`/console/api/track?${new URLSearchParams({ device_id: deviceId, from: from.toISOString(), to: to.toISOString() })}`); } catch (e) { out.replaceChildren(errorBox(e)); return; }
      if (!tr.t_ms.length) { out.replaceChildren(h('p', { class: 'muted' }, 'No positions in this period.')); return; }
      const lls = tr.lat.map((lat, i) => /** @type {[number, number]} */ ([lat, tr.lon[i]]));
      L.polyline(lls, { color: '#8250df', weight: 3, opacity: 0.8 }).addTo(replayLayer);
      const dot = L.circleMarker(lls[0], { radius: 8, color: '#fff', weight: 2, fillColor: '#8250df', fillOpacity: 1 }).addTo(replayLayer);
      map.fitBounds(L.latLngBounds(lls).pad(0.2), { maxZoom: 16, animate: false });
      const slider = /** @type {HTMLInputElement} */ (h('input', { type: 'range', id: 'replay-slider', min: 0, max: lls.length - 1, value: 0, 'aria-label': 'Replay position' }));
      const when = h('span', { id: 'replay-time' });
      const at = (i) => {
        dot.setLatLng(lls[i]);
        const v = tr.speed_mps[i];
        when.textContent = `${fmtTime(tr.t_ms[i])}${v !== null && v !== undefined ? ` · ${(v * 3.6).toFixed(0)} km/h` : ''}`;
      };
      slider.addEventListener('input', () => at(Number(slider.value)));
      const play = h('button', { type: 'button', id: 'replay-play' }, 'Play');
      play.addEventListener('click', () => {
        clearInterval(replayTimer);
        const step = Math.max(1, Math.round(lls.length / 200)); // about 20 s for a whole track
        replayTimer = setInterval(() => {
          const i = Math.min(lls.length - 1, Number(slider.value) + step);
          slider.value = String(i); at(i);
          if (i >= lls.length - 1) clearInterval(replayTimer);
        }, 100);
      });
      at(0);
      out.replaceChildren(h('p', {}, `${lls.length} positions${tr.truncated ? ' (thinned)' : ''}`), slider, h('div', { class: 'toolbar' }, play, when));
      out.dataset.points = String(lls.length);
    });
    return h('div', { class: 'replay' }, h('h3', {}, 'History'), h('div', { class: 'toolbar' }, period, go), out);
  }

  function upsertDevice(id, lon, lat, extra = {}) {
    let d = markers.get(id);
    if (!d) {
      const phone = extra.kind === 'phone' || id.includes('-rep-');
      const m = L.circleMarker([lat, lon], phone
        ? { radius: 7, weight: 3, color: COLORS.phone, fillOpacity: 0.9 }
        : { radius: 6, weight: 2, color: '#24292f', fillOpacity: 0.9 });
      const row = /** @type {HTMLLIElement} */ (h('li', { dataset: { deviceId: id }, tabindex: 0 }, h('i', {}), ''));
      d = { id, marker: m, row, online: extra.online ?? true, kind: phone ? 'phone' : 'equipment' };
      const open = () => show(...deviceDetails(d));
      m.on('click', open);
      row.addEventListener('click', open);
      row.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
      deviceList.append(row);
      deviceCount.textContent = String(markers.size + 1);
      m.bindTooltip(() => `${d.name || id}${d.account ? ` · ${d.account.name}` : ''}${inAlert(id) ? ' · ALERT' : ''}`);
      m.addTo(layers.devices);
      markers.set(id, d);
    } else {
      d.marker.setLatLng([lat, lon]);
    }
    if (extra.online !== undefined && extra.online !== null) d.online = extra.online;
    if (extra.account_id) d.account = { id: extra.account_id, name: extra.account_name };
    if (extra.equipment_model) d.model = extra.equipment_model;
    if (extra.name) d.name = extra.name;
    place(d);
    paint(d);
    return d;
  }

  function alertChanged(a) {
    let mine = alerting.get(a.device_id);
    if (!mine) { mine = new Map(); alerting.set(a.device_id, mine); }
    if (a.state === 'cleared') mine.delete(a.alert_id); else mine.set(a.alert_id, a.state);
    const d = markers.get(a.device_id);
    if (d) paint(d);
  }

  // Static layers; each may be missing (403/404) without breaking the map.
  try {
    const terr = await api('/api/v1/geo/territories');
    L.geoJSON(terr, {
      style: { color: '#8250df', weight: 2, fillOpacity: 0.05 },
      onEachFeature: (f, l) => l.on('click', () => show(h('h2', {}, f.properties.name), h('p', {}, `${f.properties.accounts} accounts`))),
    }).addTo(layers.territories);
  } catch (e) { console.info('territories not shown:', e.message); }
  try {
    const { fences } = await api('/api/v1/geo/fences');
    for (const f of fences) drawFence(L, layers.fences, f, show);
  } catch (e) { console.info('fences not shown:', e.message); }
  try {
    const st = await api('/console/api/sites');
    const markersOfSites = st.ids.map((id, i) => L.marker([st.lat[i], st.lon[i]], { icon: L.divIcon({ className: 'site-icon', iconSize: [10, 10] }), keyboard: false })
      .bindTooltip(st.names[i])
      .on('click', () => show(h('h2', {}, st.names[i]), h('p', {}, st.types[i]), h('a', { href: `#/r/accounts/${id}` }, 'Open account'))));
    layers.sites.addLayers(markersOfSites);
    el.dataset.sites = String(st.ids.length);
    if (st.truncated) toast(`Showing the first ${st.ids.length} accounts on the map`);
  } catch (e) { console.info('account sites not shown:', e.message); }
  try {
    const { devices } = await api('/console/api/positions');
    const active = await api('/api/v1/alerts?state=active').then((r) => r.items).catch(() => []);
    for (const a of active) alertChanged(a);
    for (const d of devices) {
      if (d.alert_state && !inAlert(d.device_id)) alerting.set(d.device_id, new Map([['snapshot', d.alert_state]]));
      if (d.lon !== null && d.lon !== undefined) upsertDevice(d.device_id, d.lon, d.lat, d);
    }
    const pts = [...markers.values()].map((d) => d.marker.getLatLng());
    if (pts.length) map.fitBounds(L.latLngBounds(pts).pad(0.2), { maxZoom: 14, animate: false });
  } catch (e) { root.prepend(errorBox(e)); }

  // Today's routes per rep, from the routing API (the newest ready plan of each territory).
  const routesInfo = await drawRoutes(L, layers.routes, show).catch((e) => { console.info('routes not shown:', e.message); return []; });

  // Live feed.
  const stopLive = connectLive((msg) => {
    if (msg.k === 'pos') {
      const rts = [];
      for (const [id, lon, lat, _tMs, _speed, rt] of msg.d) {
        upsertDevice(id, lon, lat);
        rts.push(rt);
      }
      requestAnimationFrame(() => {
        // the fix's receipt time (epoch ms) to the frame that draws it, on the page's clock
        const end = performance.now();
        for (const rt of rts) {
          const start = rt ? rt - performance.timeOrigin : -1;
          if (start < 0) continue; // no receipt time, or received before this page existed
          if (latencySamples >= MAX_LAT_SAMPLES) { performance.clearMeasures(LATENCY); latencySamples = 0; }
          performance.measure(LATENCY, { start: Math.min(start, end), end });
          latencySamples += 1;
        }
      });
    } else if (msg.k === 'status') {
      for (const [id, online] of msg.d) { const d = markers.get(id); if (d) { d.online = online; paint(d); } }
    } else if (msg.k === 'geo') {
      for (const [subject, fence, kind] of msg.d) toast(`${subject} ${kind} fence ${fence}`);
    } else if (msg.k === 'alert') {
      for (const row of msg.d) {
        const [device, alertId, type, severity, state] = row;
        if (alerting.get(device)?.has('snapshot')) alerting.get(device).delete('snapshot');
        alertChanged({ device_id: device, alert_id: alertId, state });
        if (state === 'raised') toast(`${severity} alert on ${device}: ${type}`, 'error');
      }
    }
  }, (state, m) => {
    if (state === 'live') { status.textContent = 'live'; status.dataset.state = 'live'; } else if (state === 'error') { status.textContent = m.message; } else { status.textContent = 'reconnecting…'; status.dataset.state = 'down'; }
  });

  // Going offline is time passing (no message within the server's window, telemetry.online),
  // which no live frame announces: re-read the server's verdict every minute.
  const onlineTimer = setInterval(() => {
    api('/console/api/positions').then(({ devices }) => {
      for (const x of devices) {
        const d = markers.get(x.device_id);
        if (d && x.online !== null && x.online !== undefined && d.online !== x.online) { d.online = x.online; paint(d); }
      }
    }).catch((e) => console.info('online states not refreshed:', e.message));
  }, 60000);

  // Drawing.
  const drawDone = (kind) => async (shape) => {
    const name = prompt(`Name of the new ${kind}?`, '') || '';
    try {
      if (kind === 'territory') {
        await api('/api/v1/geo/territories', { method: 'POST', body: { type: 'FeatureCollection', features: [{ type: 'Feature', geometry: shape.geometry, properties: { name } }] } });
      } else {
        const f = await api('/api/v1/geo/fences', { method: 'POST', body: { name, geometry: shape.geometry, radius_m: shape.radius_m } });
        drawFence(L, layers.fences, f, show);
      }
      shape.layer.remove();
      drawState.textContent = '';
      toast(`${kind} saved`);
    } catch (e) {
      shape.layer.setStyle({ color: COLORS.alert, dashArray: '4 4' });
      shape.layer.bindTooltip(e.message, { permanent: true, className: 'shape-error', direction: 'top' }).openTooltip();
      drawState.textContent = '';
      toast(e.message, 'error');
    }
  };
  const bind = (id, mode, kind) => {
    const b = document.getElementById(id);
    if (b) b.addEventListener('click', () => startDrawing(L, map, mode, drawDone(kind), (t) => { drawState.textContent = t; }));
  };
  bind('draw-polygon', 'polygon', 'geofence');
  bind('draw-circle', 'circle', 'geofence');
  bind('draw-territory', 'polygon', 'territory');

  const repNames = await labels('users', routesInfo.map((r) => r.rep));
  routeList.replaceChildren(...routesInfo.map((r) => h('li', { dataset: { plan: r.plan, rep: r.rep, stops: r.stops } },
    h('i', { style: `background:${r.color}` }), ` ${repNames.get(Number(r.rep)) || 'a rep'}: ${r.stops} stops`)));
  if (!routesInfo.length) routeList.append(h('li', { class: 'muted' }, 'No route planned today.'));
  return () => { clearInterval(replayTimer); clearInterval(onlineTimer); stopLive(); map.remove(); };
}

function drawFence(L, group, f, show) {
  const style = { color: '#bf3989', weight: 2, fillOpacity: 0.08 };
  let layer;
  if (f.kind === 'circle' && f.geometry && f.geometry.type === 'Point') {
    const [lon, lat] = f.geometry.coordinates;
    layer = L.circle([lat, lon], { ...style, radius: f.radius_m || 50 });
  } else {
    layer = L.geoJSON(f.geometry, { style });
  }
  layer.on('click', () => show(h('h2', {}, f.name || `Fence ${f.id}`), h('p', {}, `${f.kind}${f.radius_m ? `, ${Math.round(f.radius_m)} m` : ''}`),
    f.account_id ? h('a', { href: `#/account/${f.account_id}` }, 'Open account') : null));
  layer.addTo(group);
}

// The newest ready plan of each territory today (console /console/api/plans gives the ids,
// the routing API the GeoJSON): one coloured line per rep, numbered stops with their ETA.
async function drawRoutes(L, group, show) {
  const day = userDay(Date.now());
  const { plans } = await api(`/console/api/plans?date=${day}`);
  const out = [];
  for (const plan of plans) {
    let fc;
    try { fc = await api(`/api/v1/routing/plans/${plan.id}/geojson`); } catch (e) { console.info(`plan ${plan.id} not shown:`, e.message); continue; }
    const reps = [...new Set(fc.features.filter((f) => f.properties.kind === 'route').map((f) => f.properties.rep_id))];
    const color = (rep) => ROUTE_COLORS[reps.indexOf(rep) % ROUTE_COLORS.length];
    for (const f of fc.features) {
      const p = f.properties;
      if (p.kind === 'route') {
        const line = L.geoJSON(f, { style: { color: color(p.rep_id), weight: 3, opacity: 0.8 } }).addTo(group);
        const stops = fc.features.filter((x) => x.properties.kind === 'stop' && x.properties.rep_id === p.rep_id);
        line.on('click', () => show(h('h2', {}, refLink('users', p.rep_id), `: ${p.stops} stops`),
          h('p', { class: 'muted' }, `${hhmm(p.start)}–${hhmm(p.end)} · ${(p.distance_m / 1000).toFixed(1)} km`),
          h('ol', {}, stops.map((x) => h('li', {}, `${hhmm(x.properties.eta)} ${x.properties.title || x.properties.visit_id}`)))));
        out.push({ plan: plan.id, rep: p.rep_id, stops: p.stops, color: color(p.rep_id) });
      } else if (p.kind === 'stop') {
        const [lon, lat] = f.geometry.coordinates;
        L.marker([lat, lon], { icon: L.divIcon({ className: 'stop-icon', html: `<span style="background:${color(p.rep_id)}">${Number(p.sequence)}</span>`, iconSize: [20, 20] }), keyboard: false })
          .bindTooltip(`${p.sequence}. ${p.title || p.visit_id} · ETA ${hhmm(p.eta)}`)
          .on('click', () => show(h('h2', {}, `Stop ${p.sequence} of `, refLink('users', p.rep_id)), h('p', {}, p.title || 'visit'),
            h('p', {}, `ETA ${hhmm(p.eta)} · service ${hhmm(p.service_start)}–${hhmm(p.service_end)}`),
            h('p', { class: 'muted' }, `slack ${Math.round(p.slack_s / 60)} min · ${(p.distance_m / 1000).toFixed(1)} km from the previous stop`)))
          .addTo(group);
      }
    }
  }
  return out;
}
