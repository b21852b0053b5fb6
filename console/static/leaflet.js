// @ts-check
// Leaflet 1.9.4 from node_modules (served by the app at /console/vendor/leaflet/), loaded once
// as a classic script, and a map factory that works with or without a tile server.
/** @type {Promise<LeafletStatic> | null} */
let loading = null;
/** @returns {Promise<LeafletStatic>} */
export function loadLeaflet() {
  if (window.L) return Promise.resolve(window.L);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = '/console/vendor/leaflet/leaflet.js';
      s.onload = () => resolve(window.L);
      s.onerror = () => reject(new Error('could not load the map library'));
      document.head.append(s);
    });
  }
  return loading;
}

/** @type {{tile_url: string | null} | null} */
let config = null;
export async function consoleConfig() {
  if (!config) config = await fetch('/console/config.json').then((r) => r.json()).catch(() => ({ tile_url: null }));
  return config;
}

// A map over a plain background; tiles only when a tile URL is configured.
/**
 * @param {HTMLElement} el
 * @param {[number, number]} [center]
 * @param {number} [zoom]
 * @returns {Promise<{L: LeafletStatic, map: LeafletMap}>}
 */
export async function makeMap(el, center = [45.764, 4.8357], zoom = 10) {
  const L = await loadLeaflet();
  const cfg = await consoleConfig();
  const map = L.map(el, { preferCanvas: true, zoomControl: true, keyboard: true, minZoom: 2, maxZoom: 19 }).setView(center, zoom);
  if (cfg.tile_url) L.tileLayer(cfg.tile_url, { maxZoom: 19, attribution: 'tiles' }).addTo(map);
  else el.classList.add('no-tiles');
  L.control.scale({ imperial: false }).addTo(map);
  return { L, map };
}
