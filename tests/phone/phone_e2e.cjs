// End-to-end scenarios of the rep's phone (PWA) in Debian's headless Chromium
// (playwright-core), with Chromium's geolocation emulation as the phone's GPS.
// usage: node phone_e2e.cjs SCENARIO BASE_URL PARAMS_JSON ; prints one JSON line.
const path = require('path');
const fs = require('fs');
const { chromium } = require(path.resolve(__dirname, '../../node_modules/playwright-core'));

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

async function phonePage(browser, base, at) {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true,
    geolocation: { longitude: at[0], latitude: at[1], accuracy: 8 }, permissions: ['geolocation', 'notifications'],
  });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  return { context, page, errors };
}

async function repSignIn(page, base, user, hash = '') {
  await page.goto(`${base}/console/rep/${hash}`);
  await page.fill('#rep-signin input[name=email]', user.email);
  await page.fill('#rep-signin input[name=password]', user.password);
  await page.click('#rep-signin button[type=submit]');
  await page.waitForFunction(() => document.body.dataset.ready === 'yes' || document.getElementById('load-error'));
  const loadError = await page.$eval('#load-error', (e) => e.textContent).catch(() => null);
  if (loadError) throw new Error(loadError);
}

async function startShift(page) {
  await page.check('#gps-consent');
  await page.click('#shift-toggle');
  await page.waitForFunction(() => document.body.dataset.gpsLink === 'up', null, { timeout: 30000 });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const shot = (page, name) => page.screenshot({ path: path.join(process.env.FM_SHOTS || '.', `${name}.png`) });
// a point `m` metres east and `n` metres north of [lon, lat]
const offset = (p, e, n) => [p[0] + e / (111320 * Math.cos((p[1] * Math.PI) / 180)), p[1] + n / 110540];

// Chromium cannot subscribe to its vendor's push service offline: the page's
// PushManager.subscribe is answered by the local push service (web-push-testing) instead,
// and what that service receives is handed to Chromium's service worker over CDP, as the
// vendor's channel would on a phone.
async function withLocalPush(context, page, pushUrl) {
  const subs = [];
  await page.exposeFunction('__fmLocalPushSubscribe', async (key) => {
    const r = await fetch(`${pushUrl}/subscribe`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ userVisibleOnly: 'true', applicationServerKey: key }) });
    const { data } = await r.json();
    subs.push(data);
    return { endpoint: data.endpoint, keys: data.keys };
  });
  await context.addInitScript(() => {
    if (!window.PushManager) return;
    const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    window.PushManager.prototype.subscribe = async function subscribe(opts) {
      const s = await window.__fmLocalPushSubscribe(b64(opts.applicationServerKey));
      return { endpoint: s.endpoint, expirationTime: null, toJSON: () => ({ endpoint: s.endpoint, expirationTime: null, keys: s.keys }) };
    };
  });
  return subs;
}

async function relayPushes(page, base, pushUrl, sub, stop) {
  const cdp = await page.context().newCDPSession(page);
  const regs = new Map();
  cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => { for (const r of e.registrations) regs.set(r.scopeURL, r.registrationId); });
  await cdp.send('ServiceWorker.enable');
  const scope = `${base}/console/rep/`;
  for (let i = 0; i < 100 && !regs.has(scope); i += 1) await sleep(50);
  let seen = 0;
  const relayed = [];
  while (!stop.done) {
    const r = await fetch(`${pushUrl}/get-notifications`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ clientHash: sub.clientHash }) });
    const { data } = await r.json();
    for (const m of data.messages.slice(seen)) {
      await cdp.send('ServiceWorker.deliverPushMessage', { origin: base, registrationId: regs.get(scope), data: m });
      relayed.push(JSON.parse(m));
    }
    seen = data.messages.length;
    await sleep(10);
  }
  return relayed;
}

const scenarios = {
  // The public verification page: a PDF dropped in is hashed in the browser and checked.
  async verifyPage(browser, base, p) {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const uploads = [];
    page.on('request', (r) => { if (r.method() !== 'GET') uploads.push(r.url()); });
    const out = {};
    for (const [name, file] of Object.entries(p.files)) {
      await page.goto(`${base}/verify`);
      await page.setInputFiles('#file', file);
      await page.waitForFunction(() => ['ok', 'bad'].includes(document.getElementById('headline').className), null, { timeout: 30000 });
      out[name] = {
        headline: await page.textContent('#headline'),
        cls: await page.getAttribute('#headline', 'class'),
        steps: await page.$$eval('#steps li', (ls) => ls.map((l) => `${l.className}: ${l.textContent}`)),
        receiptLink: await page.isVisible('#download'),
      };
      await shot(page, `verify-${name}`);
    }
    await context.close();
    return { ...out, uploads, errors };
  },
  // The customer signs on the phone; completing the work order makes the signed report.
  async report(browser, base, p) {
    const { page, errors } = await phonePage(browser, base, [4.85, 45.76]);
    await repSignIn(page, base, p.user);
    await page.fill('#signer', 'Ms Customer');
    await page.locator('#signature').scrollIntoViewIfNeeded();
    const box = await page.locator('#signature').boundingBox();
    await page.mouse.move(box.x + 20, box.y + 70);
    await page.mouse.down();
    for (let i = 1; i <= 12; i += 1) await page.mouse.move(box.x + 20 + i * 25, box.y + 70 + (i % 2 ? 30 : -30));
    await page.mouse.up();
    await page.click('#complete');
    await page.waitForFunction(() => document.body.dataset.report, null, { timeout: 60000 });
    await shot(page, 'phone-report-signed');
    return { report: await page.evaluate(() => document.body.dataset.report), toast: await page.textContent('#toast'), errors };
  },

  // A photo taken offline waits in the outbox and uploads once the phone is back online.
  async photo(browser, base, p) {
    const { context, page, errors } = await phonePage(browser, base, [4.85, 45.76]);
    await repSignIn(page, base, p.user);
    await page.evaluate(() => navigator.serviceWorker.ready);
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.ready === 'yes' && navigator.serviceWorker.controller);
    const before = errors.length;
    await context.setOffline(true);
    await page.waitForFunction(() => document.body.dataset.online === 'no');
    await page.setInputFiles('#photo', p.photo);
    await page.waitForFunction(() => document.body.dataset.outbox === '1', null, { timeout: 10000 });
    const waiting = await page.textContent('#outbox');
    // Chromium logs every request that fails while offline (a poll that happened to fall
    // in the window) as a console error; the app's own errors (pageerror) are kept
    const offlineLoad = /^Failed to load resource: net::ERR_(FAILED|INTERNET_DISCONNECTED)$/;
    errors.splice(before, errors.length - before, ...errors.slice(before).filter((e) => !offlineLoad.test(e)));
    await context.setOffline(false);
    await page.waitForFunction(() => document.body.dataset.outbox === '0', null, { timeout: 60000 });
    await page.waitForSelector('#attachments img[data-attachment]', { timeout: 30000 });
    const shown = await page.getAttribute('#attachments img[data-attachment]', 'data-attachment');
    await shot(page, 'phone-photo-uploaded');
    return { waiting, shown, errors };
  },

  // A push for an urgent work order reaches the service worker, is shown, and a tap on it
  // opens the work order's screen.
  async push(browser, base, p) {
    const { context, page, errors } = await phonePage(browser, base, [4.85, 45.76]);
    const subs = await withLocalPush(context, page, p.pushUrl);
    await repSignIn(page, base, p.user);
    await page.evaluate(() => navigator.serviceWorker.ready);
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.ready === 'yes' && navigator.serviceWorker.controller);
    await page.click('#push-toggle');
    try {
      await page.waitForFunction(() => document.body.dataset.push === 'on', null, { timeout: 20000 });
    } catch (e) {
      throw new Error(`push not enabled: ${await page.textContent('#toast')} ${JSON.stringify(errors)}`);
    }
    const stop = { done: false };
    const relaying = relayPushes(page, base, p.pushUrl, subs[0], stop);
    fs.writeFileSync(p.readyFile, JSON.stringify({ clientHash: subs[0].clientHash }));
    await page.waitForFunction(() => document.body.dataset.lastPush, null, { timeout: 90000 });
    const shown = await page.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({ title: n.title, body: n.body, link: n.data.link })));
    // the tap: Chromium's notificationclick, dispatched in the service worker
    const [worker] = context.serviceWorkers();
    await worker.evaluate(async () => {
      const [n] = await self.registration.getNotifications();
      self.dispatchEvent(new self.NotificationEvent('notificationclick', { notification: n }));
    });
    await page.waitForFunction(() => document.body.dataset.screen !== 'day' && document.querySelector('#stops li.focus'), null, { timeout: 20000 });
    const focused = await page.getAttribute('#stops li.focus', 'data-wo');
    const nextTitle = await page.textContent('#next h2');
    await shot(page, 'phone-push-opened');
    stop.done = true;
    const relayed = await relaying;
    return { shown, screen: await page.evaluate(() => document.body.dataset.screen), focused, nextTitle, relayed, clientHash: subs[0].clientHash, errors };
  },

  // A rep outside their shift hours: the shift does not start and nothing is shared.
  async offshift(browser, base, p) {
    const { page, errors } = await phonePage(browser, base, [4.84, 45.76]);
    await repSignIn(page, base, p.user);
    await page.check('#gps-consent');
    await page.click('#shift-toggle');
    await page.waitForFunction(() => document.body.dataset.shift === 'outside-hours', null, { timeout: 30000 });
    const toastText = await page.evaluate(() => (document.querySelector('#toast, .toast') || {}).textContent || '');
    await sleep(1000);
    const gpsLink = await page.evaluate(() => document.body.dataset.gpsLink || null);
    return { shift: await page.evaluate(() => document.body.dataset.shift), gpsLink, toast: toastText, errors };
  },

  // Drive along a route to a site, stay until the geofence checks the phone in, then
  // buffer many fixes offline and send them when back online.
  async drive(browser, base, p) {
    const { context, page, errors } = await phonePage(browser, base, p.route[0]);
    await repSignIn(page, base, p.user);
    await startShift(page);
    const device = await page.evaluate(() => document.body.dataset.phone);
    for (const pt of p.route) {
      await context.setGeolocation({ longitude: pt[0], latitude: pt[1], accuracy: 8 });
      await sleep(500);
    }
    // at the site: small moves inside the fence until the check-in shows (automatic)
    const deadline = Date.now() + p.checkinTimeoutMs;
    let k = 0;
    while (Date.now() < deadline) {
      k += 1;
      const pt = offset(p.site, (k % 5) * 6, ((k * 3) % 5) * 6);
      await context.setGeolocation({ longitude: pt[0], latitude: pt[1], accuracy: 8 });
      if (await page.$('#stops li[data-auto=in]')) break;
      await sleep(1000);
    }
    const autoIn = Boolean(await page.$('#stops li[data-auto=in]'));
    const stopText = await page.textContent('#stops');
    await shot(page, 'phone-checked-in');
    // the manager's console map shows the phone where it is
    const mgr = await context.browser().newContext({ viewport: { width: 1280, height: 800 } });
    const mp = await mgr.newPage();
    await mp.goto(`${base}/console/`);
    await mp.fill('#signin input[name=email]', p.manager.email);
    await mp.fill('#signin input[name=password]', p.manager.password);
    await mp.click('#signin button[type=submit]');
    const row = `#device-list li[data-device-id="${device}"]`;
    await mp.waitForSelector(row, { state: 'attached', timeout: 60000 });
    const mapLonLat = (await mp.getAttribute(row, 'data-lonlat')).split(',').map(Number);
    await shot(mp, 'phone-on-console-map');
    await mgr.close();
    // offline: many fixes buffered in IndexedDB, then sent once back online
    await context.setOffline(true);
    await page.waitForFunction(() => document.body.dataset.gpsLink === 'down');
    const start = offset(p.site, 2000, 0);
    const before = Number(await page.evaluate(() => document.body.dataset.gpsWaiting || '0'));
    for (let i = 0; i < p.offlineFixes; i += 1) {
      const pt = offset(start, i * 10, 0);
      await context.setGeolocation({ longitude: pt[0], latitude: pt[1], accuracy: 8 });
      await page.waitForFunction((n) => Number(document.body.dataset.gpsWaiting) >= n, before + i + 1, { timeout: 10000 });
    }
    const waitingOffline = Number(await page.evaluate(() => document.body.dataset.gpsWaiting));
    await context.setOffline(false);
    await page.waitForFunction(() => document.body.dataset.gpsWaiting === '0', null, { timeout: 120000 });
    const gpsState = await page.textContent('#gps-state');
    return { device, autoIn, stopText, mapLonLat, waitingOffline, gpsState, errors };
  },
};

(async () => {
  const [name, base, params] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ARGS });
  try {
    const out = await scenarios[name](browser, base, JSON.parse(params));
    console.log(JSON.stringify(out));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
