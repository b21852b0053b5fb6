// @ts-check
// Leaflet 1.9.4 and its marker clustering from node_modules (served by the app at
// /console/vendor/), loaded once as classic scripts, and a map factory whose basemap works
// offline: Natural Earth land and country borders (npm world-atlas, TopoJSON) drawn as a
// vector layer, finer when zoomed in; an online tile layer is offered besides when a tile
// URL is configured (FIELDMESH_CONSOLE_TILE_URL).
/** @type {Map<string, Promise<void>>} */
const scripts = new Map();
function script(src) {
  if (!scripts.has(src)) {
    scripts.set(src, new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = src;
      s.onload = () => resolve();
      s.onerror = () => reject(new Error(`could not load ${src}`));
      document.head.append(s);
    }));
  }
  return scripts.get(src);
}

/** @returns {Promise<LeafletStatic>} */
export async function loadLeaflet() {
  if (!window.L) await script('/console/vendor/leaflet/leaflet.js');
  return window.L;
}

/** Leaflet with marker clustering (leaflet.markercluster). */
export async function loadClustering() {
  const L = await loadLeaflet();
  if (!L.markerClusterGroup) await script('/console/vendor/markercluster/leaflet.markercluster.js');
  return L;
}

/** @type {{tile_url: string | null} | null} */
let config = null;
export async function consoleConfig() {
  if (!config) config = await fetch('/console/config.json').then((r) => r.json()).catch(() => ({ tile_url: null }));
  return config;
}

/** @type {Map<string, Promise<any>>} */
const atlases = new Map();
async function atlas(file) {
  if (!atlases.has(file)) {
    atlases.set(file, (async () => {
      if (!window.topojson) await script('/console/vendor/topojson/topojson-client.min.js');
      const topo = await fetch(`/console/vendor/world-atlas/${file}`).then((r) => { if (!r.ok) throw new Error(`basemap ${file}: HTTP ${r.status}`); return r.json(); });
      return window.topojson.feature(topo, topo.objects.countries);
    })());
  }
  return atlases.get(file);
}

/**
 * The offline basemap: countries at 1:50m, swapped for 1:10m from zoom 6 on.
 * @param {LeafletStatic} L
 * @param {LeafletMap} map
 */
function offlineBasemap(L, map) {
  const renderer = L.canvas({ padding: 0.5 });
  const style = { color: '#9aa5b1', weight: 0.8, fillColor: '#f4f1e8', fillOpacity: 1, interactive: false, renderer };
  const group = L.featureGroup();
  let shown = '';
  const pick = async () => {
    const file = map.getZoom() >= 6 ? 'countries-10m.json' : 'countries-50m.json';
    if (file === shown) return;
    shown = file;
    try {
      const fc = await atlas(file);
      if (shown !== file) return;
      group.clearLayers();
      L.geoJSON(fc, { style, interactive: false }).addTo(group);
      map.getContainer().dataset.basemap = file;
    } catch (e) { console.info('basemap not shown:', e.message); }
  };
  map.on('zoomend', pick);
  pick();
  return group;
}

/**
 * A map whose basemap works without internet; tiles too when a tile URL is configured.
 * @param {HTMLElement} el
 * @param {[number, number]} [center]
 * @param {number} [zoom]
 * @returns {Promise<{L: LeafletStatic, map: LeafletMap, bases: Record<string, LeafletLayer>}>}
 */
export async function makeMap(el, center = [45.764, 4.8357], zoom = 10) {
  const L = await loadLeaflet();
  const cfg = await consoleConfig();
  const map = L.map(el, { preferCanvas: true, zoomControl: true, keyboard: true, minZoom: 2, maxZoom: 19 }).setView(center, zoom);
  el.classList.add('offline-base');
  const offline = offlineBasemap(L, map);
  /** @type {Record<string, LeafletLayer>} */
  const bases = { 'Offline map (Natural Earth)': offline };
  if (cfg.tile_url) {
    const tiles = L.tileLayer(cfg.tile_url, { maxZoom: 19, attribution: 'tiles' });
    bases['Online tiles'] = tiles;
    tiles.addTo(map);
  } else offline.addTo(map);
  L.control.scale({ imperial: false }).addTo(map);
  return { L, map, bases };
}
