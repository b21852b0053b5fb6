// @ts-check
// Service worker of the rep's view: the app shell is cached at install; GET /api/v1/* (and
// the console's /console/api/*: plan ids, automatic check-ins) is
// network-first with the last answer kept (the day's plan and the accounts it needs work
// offline); other methods are never touched (the page queues them in its outbox).
/// <reference lib="webworker" />
const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));
const SHELL = 'fm-rep-shell-v7';
const DATA = 'fm-rep-data-v1';
const FILES = [
  '/console/rep/', '/console/rep/rep.js', '/console/rep/queue.js', '/console/rep/gps.js', '/console/rep/devicekey.js',
  '/console/rep/talk.js', '/console/voice.js', '/console/capture-worklet.js',
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

// ---------------------------------------------------------------- Web Push
// A push (notify/push.py: {id, kind, title, body, link, urgent, sent_ms}) is shown as a
// notification; open pages of the app hear that it was shown (their list of notifications,
// and the time from send to shown). A tap opens the notification's screen: an open window
// of the app is asked to go there (and focused), otherwise a new one is opened.
/** @param {any} msg */
async function showPush(msg) {
  const link = typeof msg.link === 'string' && msg.link.startsWith('/') && !msg.link.startsWith('//') ? msg.link : '/console/rep/';
  await sw.registration.showNotification(msg.title || 'fieldmesh', {
    body: msg.body || '', tag: `fm-${msg.id}`, requireInteraction: Boolean(msg.urgent),
    icon: '/console/rep/icon.svg', data: { id: msg.id, link, kind: msg.kind },
  });
  const shownMs = Date.now();
  for (const c of await sw.clients.matchAll({ type: 'window', includeUncontrolled: true })) {
    c.postMessage({ type: 'push-shown', id: msg.id, kind: msg.kind, link, sentMs: msg.sent_ms, shownMs });
  }
}

sw.addEventListener('push', (e) => {
  let msg = { id: 0, title: 'fieldmesh', body: '', link: '/console/rep/' };
  try { if (e.data) msg = e.data.json(); } catch { /* not JSON: shown with the default title */ }
  e.waitUntil(showPush(msg));
});

/** @param {string} link */
async function openLink(link) {
  const url = new URL(link, location.origin);
  const wins = await sw.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const app = wins.find((c) => new URL(c.url).pathname.startsWith('/console/rep/') && url.pathname.startsWith('/console/rep/'));
  if (app) {
    app.postMessage({ type: 'open', link });
    try { await app.focus(); } catch { /* focusing needs the tap's user activation */ }
    return;
  }
  await sw.clients.openWindow(url.href);
}

sw.addEventListener('notificationclick', (e) => {
  e.notification.close();
  const data = e.notification.data || {};
  const done = openLink(typeof data.link === 'string' ? data.link : '/console/rep/');
  e.waitUntil(done);
});
