// bench-phone's push probe: a rep's phone (the PWA) in headless Chromium subscribed to the
// local push service (web-push-testing; Chromium cannot reach its vendor's service here).
// What the push service receives is handed to the page's service worker over CDP, as the
// vendor's channel would; the service worker shows it and tells the page (sentMs, shownMs).
// usage: node phone_push_probe.cjs BASE EMAIL PASSWORD PUSH_URL N TIMEOUT_S
// prints "READY" once subscribed, then one JSON line: {shown: [{id, sentMs, shownMs}], errors}
const path = require('path');
const { chromium } = require(path.resolve(__dirname, '../node_modules/playwright-core'));

const [base, email, password, pushUrl, n, timeoutS] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const post = (url, body) => fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json());

(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  const context = await browser.newContext({ permissions: ['notifications'] });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  let sub = null;
  await page.exposeFunction('__fmLocalPushSubscribe', async (key) => {
    sub = (await post(`${pushUrl}/subscribe`, { userVisibleOnly: 'true', applicationServerKey: key })).data;
    return { endpoint: sub.endpoint, keys: sub.keys };
  });
  await context.addInitScript(() => {
    const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    window.PushManager.prototype.subscribe = async function subscribe(opts) {
      const s = await window.__fmLocalPushSubscribe(b64(opts.applicationServerKey));
      return { endpoint: s.endpoint, toJSON: () => ({ endpoint: s.endpoint, expirationTime: null, keys: s.keys }) };
    };
  });
  await page.goto(`${base}/console/rep/`);
  await page.fill('#rep-signin input[name=email]', email);
  await page.fill('#rep-signin input[name=password]', password);
  await page.click('#rep-signin button[type=submit]');
  await page.waitForFunction(() => document.body.dataset.ready === 'yes', null, { timeout: 60000 });
  await page.evaluate(() => navigator.serviceWorker.ready);
  await page.reload();
  await page.waitForFunction(() => document.body.dataset.ready === 'yes' && navigator.serviceWorker.controller, null, { timeout: 60000 });
  await page.evaluate(() => { window.__shown = []; navigator.serviceWorker.addEventListener('message', (e) => { if (e.data && e.data.type === 'push-shown') window.__shown.push(e.data); }); });
  await page.click('#push-toggle');
  await page.waitForFunction(() => document.body.dataset.push === 'on', null, { timeout: 30000 });
  const cdp = await context.newCDPSession(page);
  const regs = new Map();
  cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => { for (const r of e.registrations) regs.set(r.scopeURL, r.registrationId); });
  await cdp.send('ServiceWorker.enable');
  const scope = `${base}/console/rep/`;
  for (let i = 0; i < 100 && !regs.has(scope); i += 1) await sleep(50);
  console.log('READY');
  const deadline = Date.now() + Number(timeoutS) * 1000;
  let seen = 0;
  while (Date.now() < deadline) {
    const { data } = await post(`${pushUrl}/get-notifications`, { clientHash: sub.clientHash });
    for (const m of data.messages.slice(seen)) await cdp.send('ServiceWorker.deliverPushMessage', { origin: base, registrationId: regs.get(scope), data: m });
    seen = data.messages.length;
    const shown = await page.evaluate(() => window.__shown.length);
    if (shown >= Number(n)) break;
    await sleep(5);
  }
  const shown = await page.evaluate(() => window.__shown);
  console.log(JSON.stringify({ shown, errors }));
  await browser.close();
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
