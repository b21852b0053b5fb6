// @ts-check
// Service worker of the rep's view: the app shell is cached at install; GET /api/v1/* (and
// the console's /console/api/*: plan ids, automatic check-ins) is
// network-first with the last answer kept (the day's plan and the accounts it needs work
// offline); other methods are never touched (the page queues them in its outbox).
/// <reference lib="webworker" />
const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));
const SHELL = 'fm-rep-shell-v4';
const DATA = 'fm-rep-data-v1';
const FILES = [
  '/console/rep/', '/console/rep/rep.js', '/console/rep/queue.js', '/console/rep/gps.js',
  '/console/vendor/mqtt/mqtt.esm.js', '/console/rep/rep.css',
  '/console/rep/manifest.webmanifest', '/console/rep/icon.svg', '/console/api.js', '/console/ui.js', '/console/live.js',
  '/console/leaflet.js', '/console/style.css', '/console/config.json',
  '/console/vendor/leaflet/leaflet.js', '/console/vendor/leaflet/leaflet.css',
];

sw.addEventListener('install', (e) => {
  e.waitUntil(caches.open(SHELL).then((c) => c.addAll(FILES)).then(() => sw.skipWaiting()));
});
sw.addEventListener('activate', (e) => {
  e.waitUntil(caches.keys().then((keys) => Promise.all(keys.filter((k) => ![SHELL, DATA].includes(k)).map((k) => caches.delete(k))))
    .then(() => sw.clients.claim()));
});

sw.addEventListener('fetch', (e) => {
  const req = e.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== location.origin) return;
  if (url.pathname.startsWith('/api/v1/') || url.pathname.startsWith('/console/api/')) {
    // Keyed by URL only: the Authorization header varies per user, so drop the data cache
    // at sign-out (the page does).
    // Answer only once the copy is stored: a page that has loaded its plan can then go
    // offline at once and still find it.
    e.respondWith(fetch(req).then(async (r) => {
      if (r.ok) { const c = await caches.open(DATA); await c.put(req, r.clone()); }
      return r;
    }).catch(() => caches.match(req).then((r) => r || new Response(JSON.stringify({ error: { code: 'offline', message: 'offline and not cached' } }), { status: 503, headers: { 'Content-Type': 'application/json' } }))));
    return;
  }
  if (url.pathname.startsWith('/console/')) {
    // stale-while-revalidate for the shell; the refresh is kept alive until it is stored
    const net = fetch(req).then((r) => {
      if (!r.ok) return r;
      const copy = r.clone();
      return caches.open(SHELL).then((c) => c.put(req, copy)).then(() => r);
    });
    e.waitUntil(net.catch(() => undefined));
    e.respondWith(caches.match(req, { ignoreSearch: true }).then((hit) => hit || net));
  }
});
