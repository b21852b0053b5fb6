// End-to-end scenarios of the web console in Debian's headless Chromium (playwright-core).
// usage: node e2e.cjs SCENARIO BASE_URL PARAMS_JSON ; prints one JSON line with the result.
// Screenshots go to $FM_SHOTS. Console errors and failed requests are collected and
// reported, so the tests can require none.
const path = require('path');
const { chromium } = require(path.resolve(__dirname, '../../node_modules/playwright-core'));

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

// Debian's Chromium, headless, with these flags and any extra ones (a fake microphone).
function launch(extraArgs = []) {
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: [...ARGS, ...extraArgs] });
}

// A driver's result line: "Failed to load resource" console lines duplicate bad
// responses, which newPage lists apart (errors.bad) with their URL.
function report(result) {
  if (result.errors) {
    result.bad = result.errors.bad;
    result.errors = result.errors.filter((e) => !e.startsWith('Failed to load resource'));
  }
  return JSON.stringify(result);
}

async function newPage(browser, base, opts = {}) {
  const context = await browser.newContext({ viewport: opts.viewport || { width: 1280, height: 800 }, ...(opts.context || {}) });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  // "Failed to load resource" console lines duplicate bad responses, listed here instead
  // with their URL so a test can tell an expected 401/404 from a broken screen.
  const bad = [];
  page.on('response', (r) => { if (r.status() >= 400) bad.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`); });
  page.on('requestfailed', (r) => { const f = r.failure(); if (!(f && /ABORTED/.test(f.errorText))) bad.push(`failed ${r.url()} ${f && f.errorText}`); });
  errors.bad = bad;
  return { context, page, errors };
}

async function signIn(page, base, user, url = '/console/') {
  await page.goto(base + url);
  await page.fill('#signin input[name=email]', user.email);
  await page.fill('#signin input[name=password]', user.password);
  await page.click('#signin button[type=submit]');
  await page.waitForFunction(() => document.body.dataset.signedIn === 'yes');
}

// Each chart's text as a reader sees it: its smallest font in CSS pixels (the SVG is scaled
// to its box), labels that overlap (slanted ones apart: their boxes are their slant's), and
// text that sticks out of the chart.
const chartText = (page) => page.$$eval('svg.chart', (svgs) => svgs.map((svg) => {
  const box = svg.getBoundingClientRect();
  const scale = box.width / svg.viewBox.baseVal.width;
  const texts = [...svg.querySelectorAll('text')].filter((t) => t.textContent);
  const rects = texts.map((t) => ({ text: t.textContent, r: t.getBoundingClientRect(), slanted: t.classList.contains('slanted') }));
  const outside = rects.filter(({ r }) => r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1).map((x) => x.text);
  const flat = rects.filter((x) => !x.slanted);
  const overlaps = [];
  flat.forEach((a, i) => flat.slice(i + 1).forEach((b) => {
    if (a.r.left < b.r.right - 1 && b.r.left < a.r.right - 1 && a.r.top < b.r.bottom - 1 && b.r.top < a.r.bottom - 1) overlaps.push([a.text, b.text]);
  }));
  return {
    label: svg.getAttribute('aria-label'),
    width: Math.round(box.width),
    px: Math.min(...texts.map((t) => parseFloat(getComputedStyle(t).fontSize) * scale)),
    outside,
    overlaps,
  };
}));

const shot = (page, name) => page.screenshot({ path: path.join(process.env.FM_SHOTS || '.', `${name}.png`), fullPage: false });

const scenarios = {
  async signin(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await page.goto(base + '/console/');
    await page.waitForSelector('#signin[open]');
    await page.fill('#signin input[name=email]', p.user.email);
    await page.fill('#signin input[name=password]', 'wrong-password');
    await page.click('#signin button[type=submit]');
    await page.waitForFunction(() => document.getElementById('signin-error').textContent.length > 0);
    const wrong = await page.textContent('#signin-error');
    await page.fill('#signin input[name=password]', p.user.password);
    await page.click('#signin button[type=submit]');
    await page.waitForFunction(() => document.body.dataset.signedIn === 'yes');
    const who = await page.textContent('#who');
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.signedIn === 'yes');
    const whoAfterReload = await page.textContent('#who');
    // signing out takes the records off the page, even back on the previous screen, and the
    // token it signed in with no longer works
    await page.evaluate(() => { location.hash = '#/accounts'; });
    await page.waitForSelector('body[data-view=accounts]');
    await page.evaluate(() => { location.hash = '#/pipeline'; });
    await page.waitForSelector('body[data-view=pipeline]');
    const oldToken = await page.evaluate(() => localStorage.getItem('fm.token'));
    await page.click('#signout');
    await page.waitForSelector('#signin[open]');
    await page.waitForFunction(() => document.body.dataset.signedIn === 'no');
    const afterSignOut = await page.textContent('#view');
    await page.goBack();
    await page.waitForFunction(() => location.hash === '#/accounts');
    await page.waitForTimeout(300); // what a render would have drawn by now
    const afterBack = await page.textContent('#view');
    const oldTokenStatus = await page.evaluate(async (t) => (await fetch('/api/v1/auth/me', { headers: { Authorization: `Bearer ${t}` } })).status, oldToken);
    // Signed out elsewhere: the token revoked behind the page's back (another tab, another
    // device, or expired). The next request's 401 signs the page out as the button does:
    // records, search hits and the assistant's conversation gone.
    const again = async (p2 = page) => {
      await p2.waitForSelector('#signin[open]');
      await p2.fill('#signin input[name=email]', p.user.email);
      await p2.fill('#signin input[name=password]', p.user.password);
      await p2.click('#signin button[type=submit]');
      await p2.waitForFunction(() => document.body.dataset.signedIn === 'yes');
    };
    const revoke = async () => {
      const t = await page.evaluate(() => localStorage.getItem('fm.token'));
      const r = await fetch(`${base}/api/v1/auth/logout`, { method: 'POST', headers: { Authorization: `Bearer ${t}` } });
      if (r.status !== 204) throw new Error(`logout answered ${r.status}`);
    };
    const signedOutState = () => page.evaluate(() => ({
      view: document.getElementById('view').textContent,
      dataView: document.body.dataset.view || null,
      search: /** @type {HTMLInputElement} */ (document.getElementById('search')).value,
      hits: document.getElementById('search-results').textContent,
      assistant: [...document.querySelectorAll('#assistant .assistant-log li:not(.assistant-hint)')].length,
    }));
    await again();
    await page.waitForSelector('body[data-view=accounts]');
    await page.click('#assistant-open');
    await page.fill('#assistant input[name=text]', 'pipeline this quarter');
    await page.press('#assistant input[name=text]', 'Enter');
    await page.waitForSelector('#assistant li.assistant-bot');
    await page.click('#assistant .assistant-close');
    await revoke();
    await page.fill('#search', 'a');
    await page.waitForSelector('#signin[open]');
    const after401 = await signedOutState();
    // the live map's socket, closed by the server (4401) when the token is revoked, does the same
    await again();
    await page.evaluate(() => { location.hash = '#/map'; });
    await page.waitForSelector('.live-state[data-state=live]', { timeout: 20000 });
    await revoke();
    await page.waitForSelector('#signin[open]', { timeout: 20000 });
    const afterSocket = await signedOutState();
    // Sign out in another tab (same browser): this tab signs out at once, not at its next request
    await again();
    await page.evaluate(() => { location.hash = '#/accounts'; });
    await page.waitForSelector('body[data-view=accounts]');
    const other = await page.context().newPage();
    await other.goto(`${base}/console/#/pipeline`);
    await other.waitForFunction(() => document.body.dataset.signedIn === 'yes');
    await other.click('#signout');
    await page.waitForSelector('#signin[open]');
    const afterOtherTab = await signedOutState();
    return { wrong, who, whoAfterReload, afterSignOut, afterBack, oldTokenStatus, after401, afterSocket, afterOtherTab, errors };
  },

  async live(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user);
    try {
      await page.waitForSelector('.live-state[data-state=live]', { timeout: 20000 });
    } catch (e) {
      throw new Error(`map never went live: ${await page.textContent('main').catch(() => '')} ${JSON.stringify(errors)} ${JSON.stringify(errors.bad)}`);
    }
    // the device's line in the map's device list follows its marker
    const row = `#device-list li[data-device-id="${p.device}"]`;
    await page.waitForSelector(row, { state: 'attached', timeout: 60000 });
    const lonlat = () => page.getAttribute(row, 'data-lonlat').then((v) => { const [lng, lat] = v.split(',').map(Number); return { lng, lat }; });
    const first = await lonlat();
    await page.waitForFunction(([sel, was]) => document.querySelector(sel).dataset.lonlat !== was, [row, `${first.lng},${first.lat}`], { timeout: 60000 });
    const second = await lonlat();
    await page.waitForTimeout(1500);
    await shot(page, 'live-map');
    const fm = await page.evaluate(() => ({
      markers: document.querySelectorAll('#device-list li[data-device-id]').length,
      latencies: performance.getEntriesByName('fm:fix-to-marker', 'measure').length,
    }));
    return { first, second, ...fm, errors };
  },

  async pipeline(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/pipeline');
    const card = `.card[data-opp-id="${p.opp}"]`;
    await page.waitForSelector(card);
    const cardText = await page.textContent(card);
    const target = `.column[data-stage-id="${p.toStage}"]`;
    const patched = page.waitForResponse((r) => r.request().method() === 'PATCH' && r.url().includes(`/opportunities/${p.opp}`));
    await page.dragAndDrop(card, target);
    const patchStatus = (await patched).status();
    try {
      await page.waitForSelector(`${target} ${card}`, { timeout: 15000 });
    } catch (e) {
      throw new Error(`card not in target: toast=${await page.textContent('#toast')} ${JSON.stringify(errors)} ${JSON.stringify(errors.bad)}`);
    }
    await page.waitForTimeout(300);
    const toastText = await page.textContent('#toast');
    await shot(page, 'pipeline-board');
    await page.reload();
    await page.waitForSelector(card);
    const columnAfterReload = await page.getAttribute(`.column:has(${card})`, 'data-stage-id');
    return { columnAfterReload, patchStatus, toastText, cardText, errors };
  },

  async import(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/import');
    await page.waitForSelector('#import-file');
    // no file: said beside the file input in the console's words (not the browser's bubble)
    await page.click('#import-submit');
    await page.waitForFunction(() => document.getElementById('import-file-error').textContent);
    const noFile = await page.evaluate(() => ({
      error: document.getElementById('import-file-error').textContent,
      invalid: document.getElementById('import-file').getAttribute('aria-invalid'),
      focus: document.activeElement.id,
    }));
    await page.selectOption('#import-entity', p.entity);
    await page.setInputFiles('#import-file', { name: 'accounts.csv', mimeType: 'text/csv', buffer: Buffer.from(p.csv) });
    await page.click('#import-submit');
    await page.waitForSelector('#import-state[data-status]', { timeout: 60000, state: 'attached' });
    const state = await page.textContent('#import-state');
    const status = await page.getAttribute('#import-state', 'data-status');
    const rows = await page.$$eval('#import-error-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
    const progress = await page.$eval('#import-progress', (e) => [e.value, e.max]);
    await shot(page, 'csv-import');
    const failure = await page.textContent('#import-errors');
    const noFileAfter = await page.textContent('#import-file-error');
    return { noFile, noFileAfter, state, status, rows, progress, failure, errors };
  },

  async offline(browser, base, p) {
    const { context, page, errors } = await newPage(browser, base, { viewport: { width: 390, height: 844 }, context: { isMobile: true, hasTouch: true } });
    await page.goto(base + '/console/rep/');
    await page.fill('#rep-signin input[name=email]', p.user.email);
    await page.fill('#rep-signin input[name=password]', p.user.password);
    await page.click('#rep-signin button[type=submit]');
    await page.waitForFunction(() => document.body.dataset.ready === 'yes' || document.getElementById('load-error'));
    const loadError = await page.$eval('#load-error', (e) => e.textContent).catch(() => null);
    if (loadError) throw new Error(`${loadError} ${JSON.stringify(errors.bad)}`);
    await page.evaluate(() => navigator.serviceWorker.ready);
    await page.reload(); // now controlled by the service worker, which caches what it serves
    await page.waitForFunction(() => document.body.dataset.ready === 'yes' && navigator.serviceWorker.controller);
    await page.waitForTimeout(500);
    await context.setOffline(true);
    await page.reload(); // the shell, the day's plan and its accounts come from the cache
    await page.waitForFunction(() => document.body.dataset.ready === 'yes');
    const offlineStops = await page.$$eval('#stops li', (li) => li.map((x) => x.textContent));
    if (!(await page.$('#checkin'))) throw new Error(`no next stop offline: ${await page.textContent('main')} ${JSON.stringify(errors)} ${JSON.stringify(errors.bad)}`);
    const nextStop = await page.textContent('#next'); // no automatic check-in (geofence) yet
    await page.click('#checkin');
    await page.fill('#note', 'Replaced the seal; pressure back to normal.');
    await page.click('#save-note');
    await page.locator('#signature').scrollIntoViewIfNeeded();
    const box = await page.locator('#signature').boundingBox();
    await page.mouse.move(box.x + 20, box.y + 70);
    await page.mouse.down();
    for (let i = 1; i <= 10; i += 1) await page.mouse.move(box.x + 20 + i * 25, box.y + 70 + (i % 2 ? 30 : -30));
    await page.mouse.up();
    await page.click('#complete');
    try {
      await page.waitForFunction(() => document.body.dataset.outbox === '4', null, { timeout: 10000 });
    } catch (e) {
      await shot(page, 'rep-offline-failed');
      throw new Error(`outbox=${await page.evaluate(() => document.body.dataset.outbox)} signed=${await page.getAttribute('#signature', 'data-signed').catch(() => '?')} online=${await page.evaluate(() => navigator.onLine)} ${JSON.stringify(errors)}`);
    }
    await shot(page, 'rep-offline');
    // The first activity POST reaches the server but its answer is lost: the outbox must
    // send it again (same Idempotency-Key) and the server must not store it twice.
    let intercepted = 0;
    await context.route('**/api/v1/activities', async (route) => {
      if (route.request().method() === 'POST' && intercepted === 0) {
        intercepted += 1;
        await route.fetch();
        await route.abort('connectionreset');
        return;
      }
      await route.continue();
    });
    await context.setOffline(false);
    for (let i = 0; i < 100 && intercepted === 0; i += 1) await page.waitForTimeout(200); // the 'online' event starts a flush
    // the lost answer stopped the first flush: send again (the page also does this on its next trigger)
    for (let i = 0; i < 20; i += 1) {
      if ((await page.evaluate(() => document.body.dataset.outbox)) === '0') break;
      await page.click('#sync-now');
      await page.waitForTimeout(300);
    }
    await page.waitForFunction(() => document.body.dataset.outbox === '0', null, { timeout: 30000 });
    await shot(page, 'rep-online');
    const net = await page.textContent('#net');
    // a rep with nothing planned or assigned is not told that everything is done
    const idle = await newPage(browser, base, { viewport: { width: 390, height: 844 } });
    await idle.page.goto(base + '/console/rep/');
    await idle.page.fill('#rep-signin input[name=email]', p.idle.email);
    await idle.page.fill('#rep-signin input[name=password]', p.idle.password);
    await idle.page.click('#rep-signin button[type=submit]');
    await idle.page.waitForFunction(() => document.body.dataset.ready === 'yes');
    const idleNext = await idle.page.textContent('#next');
    await idle.context.close();
    errors.push(...idle.errors);
    errors.bad.push(...idle.errors.bad);
    return { offlineStops, nextStop, idleNext, intercepted, net, errors };
  },

  async alerts(browser, base, p) {
    const fs = require('fs');
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/map');
    await page.waitForSelector('.live-state[data-state=live]', { timeout: 20000 });
    const mapRow = `#device-list li[data-device-id="${p.device}"]`;
    await page.waitForSelector(mapRow, { state: 'attached', timeout: 20000 });
    const mapBefore = await page.$eval(mapRow, (li) => {
      const [lng, lat] = li.dataset.lonlat.split(',').map(Number);
      return { state: li.dataset.state, color: li.querySelector('i').style.backgroundColor, lng, lat };
    });
    await shot(page, 'map-alert');
    await page.goto(`${base}/console/#/alerts`);
    await page.waitForSelector(`#alerts li[data-alert-id="${p.earlier}"]`);
    await page.waitForSelector('.live-state[data-state=live]', { timeout: 20000 });
    fs.writeFileSync(p.readyFile, 'ready'); // the test now raises an alert the gateway's way
    const liveRow = `#alerts li[data-device="${p.device}"]:not([data-alert-id="${p.earlier}"])`;
    await page.waitForSelector(liveRow, { timeout: 60000 });
    const liveAlert = await page.getAttribute(liveRow, 'data-alert-id');
    await shot(page, 'alerts-live');
    const row = `#alerts li[data-alert-id="${liveAlert}"]`;
    const acked = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().includes('/acknowledge'));
    await page.click(`${row} button.ack`);
    if ((await acked).status() !== 200) throw new Error(`acknowledge answered ${(await acked).status()}`);
    await page.waitForSelector(`${row}[data-state=acknowledged]`);
    const rowState = await page.getAttribute(row, 'data-state');
    await shot(page, 'alerts-acknowledged');
    await page.click(`#alerts li[data-alert-id="${p.earlier}"] a`);
    await page.waitForFunction(() => document.body.dataset.view === 'device' && document.body.dataset.charts === 'ready');
    const marks = await page.$$eval('#charts svg line.mark', (l) => l.length);
    const chartPoints = await page.$eval('#charts svg polyline', (l) => l.getAttribute('points').split(' ').length).catch(() => 0);
    await shot(page, 'alert-telemetry');
    return { mapBefore, liveAlert, rowState, marks, chartPoints, errors };
  },

  async repplan(browser, base, p) {
    const fs = require('fs');
    const mgr = await newPage(browser, base);
    await signIn(mgr.page, base, p.manager, '/console/#/map');
    await mgr.page.waitForSelector('#route-list li[data-rep]', { state: 'attached', timeout: 30000 });
    const mapRoutes = await mgr.page.$$eval('#route-list li[data-rep]', (li) => li.map((x) => ({ plan: Number(x.dataset.plan), rep: x.dataset.rep, stops: Number(x.dataset.stops) })));
    const stopMarkers = await mgr.page.$$eval('.stop-icon', (l) => l.length);
    await mgr.page.waitForTimeout(300);
    await shot(mgr.page, 'map-routes');
    const { page, errors } = await newPage(browser, base, { viewport: { width: 390, height: 844 }, context: { isMobile: true, hasTouch: true } });
    await page.goto(base + '/console/rep/');
    await page.fill('#rep-signin input[name=email]', p.user.email);
    await page.fill('#rep-signin input[name=password]', p.user.password);
    await page.click('#rep-signin button[type=submit]');
    await page.waitForFunction(() => document.body.dataset.ready === 'yes' && document.body.dataset.live === 'yes', null, { timeout: 30000 });
    const order = await page.$$eval('#stops li', (li) => li.map((x) => Number(x.dataset.wo)));
    const texts = await page.$$eval('#stops li', (li) => li.map((x) => x.textContent));
    fs.writeFileSync(p.readyFile, 'ready'); // the test now records the geofence check-in
    await page.waitForSelector('#auto-checkin[data-state=in]', { timeout: 60000 });
    const auto = await page.textContent('#auto-checkin');
    const checkinDisabled = await page.$eval('#checkin', (b) => b.disabled);
    const toastText = await page.textContent('#toast');
    await shot(page, 'rep-plan-autocheckin');
    const all = [...errors, ...mgr.errors];
    all.bad = [...errors.bad, ...mgr.errors.bad];
    return { mapRoutes, stopMarkers, order, texts, auto, checkinDisabled, toastText, planned: await page.evaluate(() => document.body.dataset.planned), errors: all };
  },

  async screens(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/accounts');
    const out = {};
    for (const v of ['accounts', 'contacts', 'leads', 'opportunities', 'activities', 'workorders', 'work_orders', 'users', 'territories', 'alerts', 'analytics', 'reports', 'dashboards', 'dispatch', 'kpis', 'quotas', 'report/new', `account/${p.account}`, `r/accounts/${p.parent}`]) {
      await page.goto(`${base}/console/#/${v}`);
      await page.waitForFunction((name) => document.body.dataset.view === name.split('/')[0], v);
      await page.waitForTimeout(400);
      out[v] = (await page.textContent('main')).slice(0, 4000);
      await shot(page, `screen-${v.replace('/', '-')}`);
    }
    const phone = await newPage(browser, base, { viewport: { width: 390, height: 844 }, context: { isMobile: true, hasTouch: true } });
    await signIn(phone.page, base, p.user, '/console/#/pipeline');
    await phone.page.waitForSelector('.board');
    await shot(phone.page, 'phone-pipeline');
    // charts on the phone: the pipeline's, then one of each kind with long labels
    await phone.page.goto(`${base}/console/#/analytics`);
    await phone.page.waitForSelector('main svg.chart');
    await phone.page.evaluate(async () => {
      const { lineChart, barChart, pieChart, forecastChart } = await import('/console/chart.js');
      const stages = ['Qualification', 'Needs analysis', 'Proposal', 'Negotiation', 'Closed won', 'Closed lost', 'On hold for budget review'];
      const box = document.createElement('section');
      box.id = 'phone-charts';
      const day = (i) => new Date(Date.UTC(2026, 0, 1 + i));
      box.append(
        barChart(stages.map((label, i) => ({ label, values: [1200000 * (i + 1), 800000 * i] })), ['amount', 'weighted amount'], { unit: 'EUR', title: 'Open pipeline by stage and a long title that does not fit' }),
        pieChart(stages.map((label, i) => ({ label: `${label} in the northern region`, value: 10 + i })), { unit: 'EUR', title: 'Deals by stage' }),
        lineChart(Array.from({ length: 48 }, (_, i) => ({ t: new Date(Date.UTC(2026, 0, 1, i)), avg: 20 + (i % 7), min: 18, max: 30 })), { title: 'Temperature', unit: '°C', thresholds: [{ value: 28, label: 'high' }] }),
        lineChart(Array.from({ length: 30 }, (_, i) => ({ t: day(i), avg: 1000 * i })), { title: 'Won per day', unit: 'EUR', dates: true }),
        forecastChart(Array.from({ length: 12 }, (_, i) => ({ label: `2026-${String(i + 1).padStart(2, '0')}`, value: 50000 + i * 1000 })),
          Array.from({ length: 6 }, (_, i) => ({ label: `2027-${String(i + 1).padStart(2, '0')}`, value: 60000, low: 40000, high: 90000, run: 55000 })), { unit: 'EUR', title: 'Revenue by month' }));
      document.querySelector('main').prepend(box);
    });
    const charts = await chartText(phone.page);
    const phoneOverflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    await shot(phone.page, 'phone-charts');
    await phone.page.locator('#phone-charts svg.chart').nth(2).scrollIntoViewIfNeeded();
    await shot(phone.page, 'phone-charts-2');
    const all = [...errors, ...phone.errors];
    all.bad = [...errors.bad, ...phone.errors.bad];
    return { out, charts, phoneOverflow, errors: all };
  },
};

// the CRM's record, search and report scenarios (e2e_crm.cjs) share the helpers above
Object.assign(scenarios, require('./e2e_crm.cjs')({ newPage, signIn, shot }));
Object.assign(scenarios, require('./e2e_fieldops.cjs')({ newPage, signIn, shot }));
Object.assign(scenarios, require('./e2e_qa.cjs')({ newPage, signIn, shot }));
Object.assign(scenarios, require('./e2e_forecast.cjs')({ newPage, signIn, shot }));
Object.assign(scenarios, require('./e2e_limits.cjs')({ newPage, signIn, shot }));
Object.assign(scenarios, require('./e2e_models.cjs')({ newPage, signIn, shot }));

// Other drivers (tests/assistant/e2e_*.cjs) open their browser and sign in with these.
module.exports = { launch, newPage, signIn, shot, report, chartText };

if (require.main === module) {
  (async () => {
    const [name, base, params] = process.argv.slice(2);
    const browser = await launch();
    try {
      console.log(report(await scenarios[name](browser, base, JSON.parse(params || '{}'))));
    } finally {
      await browser.close();
    }
  })().catch((e) => { console.error(e); process.exit(1); });
}
