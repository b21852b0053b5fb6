// Scenarios of the CRM's record pages, global search and reports (loaded by e2e.cjs).
// Each returns what the test asserts on; waits are on page state, never on time.

const path = require('path');

module.exports = ({ newPage, signIn, shot }) => ({
  // A sales rep creates a lead (first with a bad value: the API's error shows on the field),
  // converts it, edits the deal inline (an invalid value, then a valid one, then a conflict),
  // finds a misspelled contact with the search box and the keyboard, and deletes an account.
  async records(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/leads');
    await page.waitForSelector('#new-record');
    await page.click('#new-record');
    await page.waitForSelector('#create-last_name');
    await page.fill('#create-first_name', 'Ada');
    await page.fill('#create-last_name', 'Quist');
    await page.fill('#create-company', 'Quist Pumps');
    await page.fill('#create-estimated_amount', '-5');
    await page.fill('#create-currency', 'EUR');
    await page.click('#create-save');
    await page.waitForFunction(() => document.getElementById('create-estimated_amount-error').textContent.length > 0);
    const fieldError = await page.textContent('#create-estimated_amount-error');
    const savingAfterError = await page.textContent('#create-save');
    await page.fill('#create-estimated_amount', '12000');
    await page.click('#create-save');
    await page.waitForFunction(() => /^#\/r\/leads\/\d+$/.test(location.hash) && document.getElementById('convert-lead'));
    const leadId = Number((await page.evaluate(() => location.hash)).split('/').pop());
    await shot(page, 'crm-lead');
    // conversion wizard
    await page.click('#convert-lead');
    await page.waitForSelector('#convert-dialog[open]');
    await page.fill('#convert-opp-name', 'Quist pumps retrofit');
    await page.click('#convert-go');
    await page.waitForFunction(() => /^#\/r\/opportunities\/\d+$/.test(location.hash) && document.querySelector('#fields dd[data-field=amount]'));
    const oppId = Number((await page.evaluate(() => location.hash)).split('/').pop());
    const amountShown = await page.textContent('#fields dd[data-field=amount] .value');
    const accountShown = await page.textContent('#fields dd[data-field=account_id] .value');
    await page.waitForFunction(() => !document.querySelector('#fields dd[data-field=account_id] .value').textContent.includes('…'));
    const accountName = await page.textContent('#fields dd[data-field=account_id] .value');
    // inline edit: invalid, then valid
    await page.click('#fields dd[data-field=probability] button.edit');
    await page.fill('#edit-probability', '150');
    await page.click('#fields dd[data-field=probability] button[type=submit]');
    await page.waitForFunction(() => (document.getElementById('edit-probability-error') || {}).textContent);
    const inlineError = await page.textContent('#edit-probability-error');
    await page.fill('#edit-probability', '40');
    await page.click('#fields dd[data-field=probability] button[type=submit]');
    await page.waitForFunction(() => !document.querySelector('#fields dd[data-field=probability] form') && document.querySelector('#fields dd[data-field=probability] .value').textContent === '40');
    // somebody else changes the deal meanwhile: the next save explains the conflict
    await page.evaluate(async (id) => {
      const t = localStorage.getItem('fm.token');
      await fetch(`/api/v1/opportunities/${id}`, { method: 'PATCH', headers: { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json', 'If-Match': '*' }, body: JSON.stringify({ name: 'Renamed elsewhere' }) });
    }, oppId);
    await page.click('#fields dd[data-field=amount] button.edit');
    await page.fill('#edit-amount', '15000');
    await page.click('#fields dd[data-field=amount] button[type=submit]');
    await page.waitForFunction(() => /Changed by/.test((document.getElementById('edit-amount-error') || {}).textContent || ''));
    const conflict = await page.textContent('#edit-amount-error');
    await page.click('#edit-amount-error button:has-text("Overwrite")');
    await page.waitForFunction(() => !document.querySelector('#fields dd[data-field=amount] form'));
    const amountAfter = await page.textContent('#fields dd[data-field=amount] .value');
    await shot(page, 'crm-opportunity');
    // the deal is won, and shows in the "won deals" report
    await page.click('#fields dd[data-field=stage_id] button.edit');
    await page.waitForSelector(`#edit-stage_id option[value="${p.wonStage}"]`, { state: 'attached' });
    await page.selectOption('#edit-stage_id', String(p.wonStage));
    await page.click('#fields dd[data-field=stage_id] button[type=submit]');
    await page.waitForFunction(() => !document.querySelector('#fields dd[data-field=stage_id] form'));
    await page.goto(`${base}/console/#/report/new`);
    await page.waitForSelector('#rb-template');
    await page.selectOption('#rb-template', 'Won deals by month');
    await page.waitForSelector('#report-out .report-result');
    const wonReport = await page.$$eval('#report-out table.report-table tbody tr', (tr) => tr.map((r) => [...r.cells].map((c) => c.textContent)));
    // global search with a typo, keyboard only
    await page.keyboard.press('Escape');
    await page.click('main');
    await page.keyboard.press('/');
    await page.keyboard.type(p.misspelled);
    await page.waitForFunction((qq) => document.getElementById('search-results').dataset.query === qq && !document.getElementById('search-results').hidden, p.misspelled);
    const hits = await page.$$eval('#search-results li[data-type]', (li) => li.map((x) => ({ type: x.dataset.type, id: x.dataset.id, text: x.textContent })));
    await shot(page, 'crm-search');
    const idx = hits.findIndex((x) => x.type === 'contacts' && Number(x.id) === p.contact);
    for (let i = 0; i < idx; i += 1) await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    await page.waitForFunction((id) => location.hash === `#/r/contacts/${id}` && document.getElementById('record-title'), p.contact);
    const contactTitle = await page.textContent('#record-title');
    // create an account, then delete it with the confirmation
    await page.goto(`${base}/console/#/new/accounts`);
    await page.waitForSelector('#create-name');
    await page.fill('#create-name', 'Short-lived Ltd');
    await page.click('#create-save');
    await page.waitForSelector('#delete-record');
    const accId = Number((await page.evaluate(() => location.hash)).split('/').pop());
    await page.click('#delete-record');
    await page.waitForSelector('#confirm-delete[open]');
    await page.click('#confirm-delete-yes');
    await page.waitForFunction(() => location.hash === '#/accounts');
    const text = await page.textContent('body');
    return { wonReport, leadId, oppId, fieldError, savingAfterError, amountShown, accountShown, accountName, inlineError, conflict, amountAfter, hits, contactTitle, accId, nulls: /\bnull\b|nullnull|undefined|NaN/.test(text), errors };
  },

  // A user adds equipment from an account's page: the form has the account filled in, a bad
  // SLA shows the API's error on its field, and the saved asset is in the equipment list.
  async equipment(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, `/console/#/r/accounts/${p.account}`);
    await page.waitForSelector('#add-equipment');
    await page.click('#add-equipment');
    await page.waitForSelector('#create-equipment_model');
    await page.waitForFunction(() => document.getElementById('create-account_id').value !== '');
    const accountShown = await page.inputValue('#create-account_id');
    await page.fill('#create-equipment_model', p.model);
    await page.fill('#create-serial', 'SN-0042');
    if (p.device) { // the device is picked by its name among the search's suggestions
      await page.fill('#create-device_id', p.device);
      await page.waitForSelector('#create-device_id-options option', { state: 'attached' });
    }
    await page.fill('#create-sla_hours', '0');
    await page.click('#create-save');
    await page.waitForFunction(() => document.getElementById('create-sla_hours-error').textContent.length > 0);
    const fieldError = await page.textContent('#create-sla_hours-error');
    const invalid = await page.getAttribute('#create-sla_hours', 'aria-invalid');
    await shot(page, 'crm-asset-form');
    await page.fill('#create-sla_hours', '24');
    await page.click('#create-save');
    await page.waitForFunction((id) => location.hash === `#/r/accounts/${id}` && document.querySelector('#account-assets tbody tr'), p.account);
    const rows = await page.$$eval('#account-assets tbody tr', (tr) => tr.map((r) => [...r.cells].map((c) => c.textContent)));
    const text = await page.textContent('body');
    // edit the SLA in the list: a bad value shows the API's error on its field, then saves
    await page.click('#account-assets button.edit-asset');
    await page.waitForSelector('#edit-asset-sla_hours');
    const editSerial = await page.inputValue('#edit-asset-serial');
    await page.fill('#edit-asset-sla_hours', '0');
    await page.click('#edit-asset-save');
    await page.waitForFunction(() => document.getElementById('edit-asset-sla_hours-error').textContent.length > 0);
    const editError = await page.textContent('#edit-asset-sla_hours-error');
    await shot(page, 'crm-asset-edit');
    await page.fill('#edit-asset-sla_hours', '6');
    await page.click('#edit-asset-save');
    await page.waitForFunction(() => !document.getElementById('edit-asset-sla_hours') && /SLA 6 h/.test(document.querySelector('#account-assets tbody').textContent));
    const edited = await page.$$eval('#account-assets tbody tr', (tr) => tr.map((r) => [...r.cells].map((c) => c.textContent)));
    // delete after confirming: the dialog names the asset
    await page.click('#account-assets button.delete-asset');
    await page.waitForSelector('#confirm-delete[open]');
    const confirmTitle = await page.textContent('#confirm-delete-title');
    await page.click('#confirm-delete-yes');
    await page.waitForFunction(() => !document.querySelector('#account-assets tbody') && /No equipment recorded/.test(document.getElementById('account-assets').textContent));
    const after = await page.textContent('body');
    return { accountShown, fieldError, invalid, rows, editSerial, editError, edited, confirmTitle, nulls: /\bnull\b|undefined|NaN/.test(text + after), errors };
  },

  // What a role may do: which buttons each page offers.
  async permissions(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/activities');
    const out = {};
    for (const [name, hash] of Object.entries(p.pages)) {
      await page.evaluate((hh) => { delete document.body.dataset.view; location.hash = hh; }, hash);
      await page.waitForFunction(() => document.body.dataset.view && !document.querySelector('main').textContent.includes('…'));
      await page.waitForFunction(() => !document.querySelector('#fields') || document.querySelector('#audit'));
      out[name] = {
        create: !!(await page.$('#new-record')),
        edit: (await page.$$('#fields button.edit')).length,
        del: !!(await page.$('#delete-record')),
        addEquipment: !!(await page.$('#add-equipment')),
        ack: await page.$$eval('#alerts button.ack', (b) => b.filter((x) => !x.disabled).length).catch(() => 0),
        text: (await page.textContent('main')).slice(0, 300),
      };
    }
    return { out, errors };
  },

  // A manager builds a report (deals by account, count and sum), runs it, exports CSV,
  // saves it and pins it to a new dashboard, which shows it.
  async report(browser, base, p) {
    const fs = require('fs');
    const { page, errors } = await newPage(browser, base, { context: { acceptDownloads: true } });
    await signIn(page, base, p.user, '/console/#/reports');
    await page.waitForSelector('#new-report');
    await page.click('#new-report');
    await page.waitForSelector('#rb-group-0').catch(async (e) => { throw new Error(`${e.message} ${await page.textContent('main')} ${JSON.stringify(errors)} ${JSON.stringify(errors.bad)}`); });
    await page.selectOption('#rb-group-0', 'account_id');
    await page.waitForSelector('#rb-add-filter');
    await page.click('#rb-add-filter');
    await page.selectOption('.rb-filter select[aria-label=Field]', 'name');
    await page.waitForSelector('.rb-filter input[aria-label=Value]');
    await page.fill('.rb-filter input[aria-label=Value]', p.dealName);
    await page.press('.rb-filter input[aria-label=Value]', 'Tab');
    await page.click('#rb-run');
    await page.waitForSelector('#report-out .report-result');
    const table = await page.$$eval('#report-out table.report-table tr', (tr) => tr.map((r) => [...r.cells].map((c) => c.textContent)));
    const bars = await page.$$eval('#report-out svg.chart rect title', (t) => t.map((x) => x.textContent));
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#rb-csv')]);
    const csv = fs.readFileSync(await download.path(), 'utf8');
    // the same result as a workbook and as a printed PDF: the files' first bytes
    const head = async (sel) => {
      const [d] = await Promise.all([page.waitForEvent('download'), page.click(sel)]);
      return { name: d.suggestedFilename(), magic: fs.readFileSync(await d.path()).subarray(0, 4).toString('latin1') };
    };
    const xlsx = await head('#rb-xlsx');
    const pdf = await head('#rb-pdf');
    await page.fill('#rb-name', p.reportName);
    await page.check('#rb-shared');
    await page.click('#rb-save');
    await page.waitForFunction(() => /^#\/report\/\d+$/.test(location.hash) && document.getElementById('rb-pin'));
    const reportId = Number((await page.evaluate(() => location.hash)).split('/').pop());
    await page.waitForSelector('#report-out .report-result');
    await shot(page, 'report-builder');
    await page.click('#rb-pin');
    await page.waitForSelector('#pin-dialog[open]');
    // a new dashboard with its name emptied is refused beside the name (it was "My dashboard")
    const nameRefusal = async (input, submit) => {
      await page.fill(input, '');
      await page.click(submit);
      await page.waitForFunction((sel) => document.getElementById(`${sel.slice(1)}-error`).textContent, input);
      return page.evaluate((sel) => ({ error: document.getElementById(`${sel.slice(1)}-error`).textContent, invalid: document.querySelector(sel).getAttribute('aria-invalid'), focus: document.activeElement.id }), input);
    };
    const pinNameless = await nameRefusal('#pin-new-name', '#pin-go');
    await page.fill('#pin-new-name', p.dashboardName);
    await page.click('#pin-go');
    await page.waitForFunction(() => /^#\/dashboard\/\d+$/.test(location.hash) && document.getElementById('dashboard')?.dataset.ready === 'yes');
    const tileTitle = await page.textContent('#dashboard .tile h2');
    const tileRows = await page.$$eval('#dashboard .tile table.report-table tbody tr', (tr) => tr.length);
    await shot(page, 'dashboard');
    // the dashboards page's own "Create dashboard": no name is refused (it was "Dashboard")
    await page.goto(`${base}/console/#/dashboards`);
    await page.waitForSelector('#new-dashboard-name');
    const createNameless = await nameRefusal('#new-dashboard-name', '#new-dashboard-name + button');
    const dashboards = await page.evaluate(async () => (await (await fetch('/api/v1/dashboards', { headers: { Authorization: `Bearer ${localStorage.getItem('fm.token')}` } })).json()).items.filter((d) => d.mine).map((d) => d.name));
    return { table, bars, csv, xlsx, pdf, reportId, pinNameless, tileTitle, tileRows, createNameless, dashboards, errors };
  },

  // The KPI page's tiles with their definitions; a list exported as XLSX and as PDF from
  // its toolbar with the list's search applied.
  async kpisExport(browser, base, p) {
    const fs = require('fs');
    const { page, errors } = await newPage(browser, base, { context: { acceptDownloads: true } });
    await signIn(page, base, p.user, '/console/#/kpis');
    await page.waitForSelector('#kpis[data-ready=yes]');
    const tiles = await page.$$eval('#kpis .tile', (t) => t.map((x) => ({ key: x.dataset.kpi, text: x.textContent })));
    await page.goto(`${base}/console/#/accounts`);
    await page.waitForSelector('#list table tbody tr, #list .empty');
    await page.fill('#list-q', p.search);
    await page.press('#list-q', 'Enter');
    await page.waitForFunction((s) => (document.getElementById('list')?.dataset.query || '').includes(encodeURIComponent(s).replace(/%20/g, '+')) || (document.getElementById('list')?.dataset.query || '').includes(s), p.search);
    const files = {};
    let columns = null; // the columns the toolbar asked the export for
    for (const ext of ['xlsx', 'pdf']) {
      const [d, req] = await Promise.all([page.waitForEvent('download'), page.waitForRequest((r) => r.url().includes('/list_exports/')), page.click(`#export-${ext}`)]);
      columns = new URL(req.url()).searchParams.get('columns');
      files[ext] = { name: d.suggestedFilename(), magic: fs.readFileSync(await d.path()).subarray(0, 4).toString('latin1') };
    }
    return { tiles, files, columns, exportError: await page.textContent('#export-error'), errors };
  },

  // The lead's score and the deal's win probability, with their reasons, on the record pages.
  async scores(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, `/console/#/r/leads/${p.leadId}`);
    await page.waitForSelector('#lead-score p');
    const lead = { score: await page.getAttribute('#lead-score', 'data-score'), text: await page.textContent('#lead-score'),
      reasons: await page.$$eval('#lead-score .reasons li', (li) => li.map((x) => x.textContent)) };
    await page.goto(`${base}/console/#/r/opportunities/${p.oppId}`);
    await page.waitForSelector('#win-probability p');
    const win = { probability: await page.getAttribute('#win-probability', 'data-probability'), text: await page.textContent('#win-probability'),
      reasons: await page.$$eval('#win-probability .reasons li', (li) => li.map((x) => x.textContent)) };
    await page.goto(`${base}/console/#/r/leads/${p.unscoredLeadId}`);
    await page.waitForSelector('#lead-score p');
    const unscored = await page.textContent('#lead-score');
    return { lead, win, unscored, errors };
  },

  // A device's page: its alerts, its site's open work orders, and commands sent from it
  // (a ping listed with its state; a refused sampling interval explained).
  async devicePage(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, `/console/#/device/${encodeURIComponent(p.device)}`);
    await page.waitForSelector('#device-commands #command-list li');
    const alerts = await page.$$eval('#device-alerts li', (li) => li.map((x) => x.textContent));
    const workOrders = await page.$$eval('#device-work-orders li a', (a) => a.map((x) => x.textContent));
    const title = await page.textContent('main h1');
    await page.click('#cmd-ping');
    await page.waitForSelector('#command-list li[data-name=ping]');
    const commands = await page.$$eval('#command-list li', (li) => li.map((x) => ({ name: x.dataset.name, state: x.dataset.state })));
    await page.fill('#cmd-interval', '0');
    await page.click('#cmd-config');
    await page.waitForFunction(() => (document.getElementById('command-error')?.textContent || '').length > 0);
    const refused = await page.textContent('#command-error');
    // the AR view: a share link made from the page opens the equipment's scene signed out
    await page.click('#ar-link-make');
    await page.waitForSelector('#ar-link-open');
    const arUrl = await page.inputValue('#ar-link-url');
    const ar = await page.evaluate(async (u) => { const r = await fetch(u, { credentials: 'omit' }); return { status: r.status, title: (/<title>([^<]*)/.exec(await r.text()) || [])[1] }; }, arUrl);
    return { alerts, workOrders, title, commands, refused, arUrl, ar, errors };
  },

  // Where a device is, on its page: a phone's GPS track over the charts' window (zoomed in
  // to a window without fixes, its last known position; later again, the track); a piece of
  // equipment at its site.
  async deviceMap(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    const ready = () => page.waitForFunction(() => document.body.dataset.view === 'device' && document.body.dataset.charts === 'ready');
    const state = async () => ({
      kind: await page.getAttribute('#device-map', 'data-kind'),
      points: Number(await page.getAttribute('#device-map', 'data-points')),
      note: await page.textContent('#device-position-note'),
      window: await page.textContent('#chart-window'),
      text: await page.textContent('main'),
    });
    await signIn(page, base, p.user, `/console/#/device/${encodeURIComponent(p.phone)}`);
    await ready();
    const track = await state();
    const lines = await page.$$eval('#device-map .leaflet-devicetrack-pane path', (x) => x.length);
    await page.waitForTimeout(500);
    await shot(page, 'device-map');
    await page.click('#zoom-in');
    await ready();
    const zoomed = await state();
    await page.click('#pan-later');
    await ready();
    const later = await state();
    await page.evaluate(() => { delete document.body.dataset.view; document.body.dataset.charts = ''; });
    await page.goto(`${base}/console/#/device/${encodeURIComponent(p.equipment)}`);
    await ready();
    const site = await state();
    return { track, lines, zoomed, later, site, errors };
  },

  // The map offline: Natural Earth basemap drawn without any tile server, thousands of
  // accounts clustered, the device list filtered, a device's track replayed.
  async mapgeo(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/map');
    await page.waitForFunction(() => document.getElementById('map')?.dataset.basemap && document.getElementById('map')?.dataset.sites);
    const basemap = await page.getAttribute('#map', 'data-basemap');
    const sites = Number(await page.getAttribute('#map', 'data-sites'));
    await page.waitForSelector('.marker-cluster');
    // zoomed out, the 2,000 sites gather into a few big clusters
    // during a zoom animation the old and the new cluster icons are both in the page (and
    // a click then may be lost): every step waits for the map to settle
    const settled = () => page.waitForFunction(() => !document.querySelector('.leaflet-cluster-anim, .leaflet-zoom-anim'));
    for (let i = 0; i < 5; i += 1) {
      await page.click('.leaflet-control-zoom-out');
      await settled();
    }
    await page.waitForFunction(() => Math.max(...[...document.querySelectorAll('.marker-cluster')].map((x) => Number(x.textContent))) > 10);
    await settled();
    const clusters = await page.$$eval('.marker-cluster', (c) => c.map((x) => Number(x.textContent)));
    const clusterNames = await page.$$eval('.marker-cluster', (c) => c.map((x) => x.getAttribute('aria-label')));
    const landDrawn = await page.$$eval('#map canvas', (c) => c.length);
    await page.fill('#device-filter', p.device);
    const visibleRows = await page.$$eval('#device-list li', (li) => li.filter((x) => !x.hidden).map((x) => x.dataset.deviceId));
    await page.click(`#device-list li[data-device-id="${p.device}"]`);
    await page.waitForSelector('#replay-load');
    await page.selectOption('#replay-period', '86400');
    await page.click('#replay-load');
    await page.waitForSelector('#replay[data-points]');
    const points = Number(await page.getAttribute('#replay', 'data-points'));
    const first = await page.textContent('#replay-time');
    await page.fill('#replay-slider', String(points - 1));
    await page.dispatchEvent('#replay-slider', 'input');
    const last = await page.textContent('#replay-time');
    await shot(page, 'map-offline-replay');
    const tileRequests = errors.bad.filter((b) => /tile/i.test(b));
    return { basemap, sites, clusters, clusterNames, landDrawn, visibleRows, points, first, last, tileRequests, errors };
  },

  // A manager saves a list view, ticks leads and assigns them to a rep in one go.
  async listtools(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/leads');
    await page.waitForSelector('#list table');
    await page.fill('#list-q', p.company);
    await page.selectOption('#list-sort', '-last_name');
    await page.click('form.filters button[type=submit]');
    await page.waitForFunction(() => /sort=-last_name/.test(document.getElementById('list').dataset.query || ''));
    const order = await page.$$eval('#list tbody tr', (tr) => tr.map((x) => Number(x.dataset.id)));
    await page.fill('#view-name', p.viewName);
    await page.click('#view-save');
    await page.waitForFunction((name) => [...document.querySelectorAll('#view-select option')].some((o) => o.textContent === name), p.viewName);
    for (const id of p.leads) await page.check(`#list tbody input[data-id="${id}"]`);
    await page.waitForSelector(`#bulk-owner option[value="${p.rep}"]`, { state: 'attached' });
    await page.selectOption('#bulk-owner', String(p.rep));
    await page.click('#bulk-apply');
    await page.waitForFunction(() => document.getElementById('bulk-count').dataset.done);
    const done = Number(await page.getAttribute('#bulk-count', 'data-done'));
    // a fresh page: the saved view brings the search and sort back
    await page.reload();
    await page.waitForSelector('#view-select');
    await page.waitForFunction((name) => [...document.querySelectorAll('#view-select option')].some((o) => o.textContent === name), p.viewName);
    const value = await page.$eval('#view-select', (s, name) => [...s.options].find((o) => o.textContent === name).value, p.viewName);
    await page.selectOption('#view-select', value);
    await page.waitForFunction(() => /sort=-last_name/.test(document.getElementById('list').dataset.query || ''));
    const restored = { q: await page.inputValue('#list-q'), sort: await page.inputValue('#list-sort') };
    await shot(page, 'list-bulk-views');
    return { order, done, restored, errors };
  },

  // A manager sets quotas from the console (one rep; each of the team), sees attainment and
  // the team total, removes one; a rep sees their own, with nothing to change.
  async quotas(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.manager, `/console/#/quotas/${p.year}`);
    const ready = () => page.waitForSelector('#quotas[data-ready=yes]');
    await ready();
    await page.evaluate(() => { document.getElementById('quotas').dataset.ready = 'no'; });
    await page.selectOption('#quota-year', p.year);
    await ready();
    const offered = await page.$$eval('#quota-rep option', (o) => o.map((x) => x.value).filter(Boolean));
    await page.selectOption('#quota-rep', String(p.rep));
    await page.selectOption('#quota-kind', 'quarter');
    await page.fill('#quota-month', p.month);
    await page.fill('#quota-amount', '0');
    await page.click('#quota-save');
    const amountError = await page.textContent('#quota-amount-error');
    await page.fill('#quota-amount', '4000');
    await page.fill('#quota-currency', 'eur');
    await page.click('#quota-save');
    await page.waitForSelector(`#quota-table tr[data-user="${p.rep}"]`);
    const quarter = await page.$eval(`#quota-table tr[data-user="${p.rep}"]`, (tr) => [...tr.cells].slice(0, 7).map((c) => c.textContent.trim()));
    await page.selectOption('#quota-rep', 'all');
    await page.selectOption('#quota-kind', 'month');
    await page.fill('#quota-month', p.month);
    await page.fill('#quota-amount', '1000');
    await page.click('#quota-save');
    await page.waitForSelector('#quota-table tfoot tr');
    const rows = await page.$$eval('#quota-table tbody tr', (tr) => tr.map((x) => [...x.cells].slice(0, 5).map((c) => c.textContent.trim())));
    const totals = await page.$$eval('#quota-table tfoot tr', (tr) => tr.map((x) => [...x.cells].slice(0, 5).map((c) => c.textContent.trim())));
    await shot(page, 'quotas-manager');
    const other = `#quota-table tbody tr[data-user="${p.other}"]`;
    await page.click(`${other} button.delete-quota`);
    await page.click('#confirm-quota-yes');
    await page.waitForSelector(other, { state: 'detached' });
    const left = await page.$$eval('#quota-table tbody tr', (tr) => tr.map((x) => Number(x.dataset.user)));
    const rep = await newPage(browser, base);
    await signIn(rep.page, base, p.repUser, `/console/#/quotas/${p.year}`);
    await rep.page.waitForSelector('#quotas[data-ready=yes]');
    await rep.page.evaluate(() => { document.getElementById('quotas').dataset.ready = 'no'; });
    await rep.page.selectOption('#quota-year', p.year);
    await rep.page.waitForSelector('#quotas[data-ready=yes]');
    const repView = {
      form: !!(await rep.page.$('#quota-form')),
      users: await rep.page.$$eval('#quota-table tbody tr', (tr) => [...new Set(tr.map((x) => Number(x.dataset.user)))]),
      buttons: await rep.page.$$eval('#quota-table button', (b) => b.length),
    };
    const all = [...errors, ...rep.errors];
    all.bad = [...errors.bad, ...rep.errors.bad];
    return { offered, amountError, quarter, rows, totals, left, repView, errors: all };
  },

  // The main navigation for one role: the links offered, each opened by a click with the
  // responses the server refused; a sidebar at 1440 px; a menu at 390 px driven by keyboard.
  async nav(browser, base, p) {
    const { page, errors } = await newPage(browser, base, { viewport: { width: 1440, height: 900 } });
    await signIn(page, base, p.user, '/console/#/accounts');
    const links = await page.$$eval('#nav li:not([hidden]) a', (a) => a.map((x) => x.getAttribute('href')));
    const sections = await page.$$eval('#nav section:not([hidden]) h2', (x) => x.map((e) => e.textContent));
    const box = await page.$eval('#nav', (n) => { const r = n.getBoundingClientRect(); return { left: r.left, width: r.width, top: r.top }; });
    const headerHeight = await page.$eval('header.top', (x) => x.getBoundingClientRect().height);
    const refused = {};
    for (const href of links.filter((x) => x.startsWith('#/'))) {
      const before = errors.bad.length;
      await page.click(`#nav a[href="${href}"]`); // the first is the page already shown
      await page.waitForFunction((v) => document.body.dataset.view === v, href.slice(2));
      await page.waitForLoadState('networkidle', { timeout: 5000 }).catch(() => {});
      await page.waitForTimeout(300);
      const current = await page.getAttribute(`#nav a[href="${href}"]`, 'aria-current');
      refused[href] = { bad: errors.bad.slice(before).filter((b) => /^40[13] /.test(b)), current: current !== null };
    }
    // the pages of their own it links to (the inbox, the workflow builder) sign in with the
    // console's token: they stay open (not sent back to /console/) and show their content
    const pages = {};
    for (const href of links.filter((x) => x.startsWith('/') && x !== '/console/rep/')) {
      await page.click(`#nav a[href="${href}"]`);
      const ready = await page.waitForFunction(() => document.body.dataset.live === 'yes' || document.querySelector('#editor fieldset'), null, { timeout: 15000 })
        .then(() => true, () => false);
      pages[href] = { ready, path: new URL(page.url()).pathname, text: (await page.textContent('body')).slice(0, 300) };
      await page.goto(`${base}/console/#/accounts`);
      await page.waitForFunction(() => document.body.dataset.view === 'accounts');
    }
    const phone = await newPage(browser, base, { viewport: { width: 390, height: 844 }, context: { isMobile: true, hasTouch: true } });
    await signIn(phone.page, base, p.user, '/console/#/accounts');
    const pg = phone.page;
    const closed = await pg.$eval('#nav', (n) => n.getBoundingClientRect().height);
    // the header: its height, and whether any of its controls sticks out of the screen
    const phoneHeader = await pg.$eval('header.top', (x) => ({
      height: x.getBoundingClientRect().height,
      outside: [...x.querySelectorAll('button, input, .who')].filter((e) => { const r = e.getBoundingClientRect(); return r.width > 0 && (r.left < 0 || r.right > window.innerWidth); }).map((e) => e.id || e.className),
    }));
    await pg.focus('#nav-toggle');
    await pg.keyboard.press('Enter');
    const expanded = await pg.getAttribute('#nav-toggle', 'aria-expanded');
    const focused = await pg.evaluate(() => document.activeElement && document.activeElement.getAttribute('href'));
    const openHeight = await pg.$eval('#nav', (n) => n.getBoundingClientRect().height);
    await shot(pg, `nav-phone-${p.user.role}`);
    await pg.keyboard.press('Tab');
    const next = await pg.evaluate(() => document.activeElement && document.activeElement.getAttribute('href'));
    await pg.keyboard.press('Escape');
    const afterEscape = { expanded: await pg.getAttribute('#nav-toggle', 'aria-expanded'), focus: await pg.evaluate(() => document.activeElement.id) };
    const overflow = await pg.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    await shot(page, `nav-${p.user.role}`);
    const all = [...errors, ...phone.errors];
    all.bad = [...errors.bad, ...phone.errors.bad];
    return { links, sections, box, headerHeight, refused, pages, phone: { closed, expanded, focused, openHeight, next, afterEscape, overflow, header: phoneHeader }, errors: all };
  },

  // axe-core over the main screens at desktop and phone width: serious and critical
  // violations, and whether the page scrolls sideways at 390 px.
  async a11y(browser, base, p) {
    const axePath = require.resolve('axe-core/axe.min.js', { paths: [path.resolve(__dirname, '../../node_modules')] });
    const out = {};
    for (const [label, viewport] of [['desktop', { width: 1440, height: 900 }], ['phone', { width: 390, height: 844 }]]) {
      const { page, errors } = await newPage(browser, base, { viewport, context: { bypassCSP: true } }); // lets axe's script in
      await signIn(page, base, p.user, '/console/#/activities');
      for (const hash of p.pages) {
        await page.evaluate((hh) => { delete document.body.dataset.view; location.hash = hh; }, hash);
        await page.waitForFunction(() => document.body.dataset.view && !document.querySelector('main').textContent.includes('…'))
          .catch(async (e) => { throw new Error(`${hash}: ${e.message} ${(await page.textContent('main')).slice(0, 500)} ${JSON.stringify(errors)}`); });
        await page.addScriptTag({ path: axePath });
        const found = await page.evaluate(async () => {
          const r = await window.axe.run(document, { resultTypes: ['violations'] });
          return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
        });
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        // every scrolling box of a table is a labelled region a keyboard can focus (ui.js
        // scrollBox), and a table wider than the phone scrolls inside it, not the page
        const boxes = await page.evaluate(() => [...document.querySelectorAll('.table-box, .report-result')].map((b) => ({
          id: b.id || b.className,
          region: b.getAttribute('role') === 'region' && b.tabIndex === 0 && !!b.getAttribute('aria-label'),
          wide: b.scrollWidth > b.clientWidth,
        })));
        out[`${label} ${hash}`] = { found, overflow, boxes };
      }
      out[`${label} errors`] = errors;
    }
    return { out };
  },

  // A dispatcher's day: reps as lanes by name, SLA breach marked, a work order dragged from
  // the unassigned lane to a rep; a rep is not offered planning.
  async dispatch(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/dispatch');
    await page.waitForSelector('#dispatch[data-ready=yes]');
    const lanes = await page.$$eval('#dispatch .column', (c) => c.map((x) => x.querySelector('h2 span').textContent));
    const breach = await page.getAttribute(`.card[data-wo="${p.late}"] .sla`, 'data-breached');
    const slaText = await page.textContent(`.card[data-wo="${p.late}"] .sla`);
    const planOffered = !!(await page.$('#plan-today'));
    const patched = page.waitForResponse((r) => r.request().method() === 'PATCH' && r.url().includes(`/work_orders/${p.late}`));
    await page.dragAndDrop(`.card[data-wo="${p.late}"]`, `#dispatch .column[data-rep="${p.toRep}"]`);
    const status = (await patched).status();
    await page.waitForSelector(`#dispatch .column[data-rep="${p.toRep}"] .card[data-wo="${p.late}"]`);
    await shot(page, 'dispatch');
    return { lanes, breach, slaText, planOffered, status, errors };
  },

  // Opportunities grouped by their account's customer segment, built in the builder: the
  // grouping is offered for records of an account and the result shows segment names.
  async segmentReport(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/report/new');
    await page.waitForSelector('#rb-group-0');
    const offered = await page.$$eval('#rb-group-0 option', (o) => o.map((x) => x.textContent));
    await page.selectOption('#rb-group-0', 'segment');
    await page.selectOption('#rb-chart', 'table');
    await page.click('#rb-run');
    await page.waitForFunction(() => document.querySelector('#report-out .report-result') || document.getElementById('report-error').textContent);
    const head = await page.$$eval('#report-out thead th', (t) => t.map((x) => x.textContent));
    const groups = await page.$$eval('#report-out tbody tr td:first-child', (t) => t.map((x) => x.textContent));
    await shot(page, 'report-segment');
    await page.selectOption('#rb-entity', 'leads');
    await page.waitForFunction(() => ![...document.querySelectorAll('#rb-group-0 option')].some((o) => o.value === 'segment'));
    return { offered, head, groups, error: await page.textContent('#report-error'), errors };
  },

  // An admin makes EUR the tenant's default currency on the settings page (a code the API
  // refuses first: its reason shows on the field); the New account and New opportunity forms
  // then preselect EUR, after a reload too, and money without a currency reads in EUR. A rep
  // sees the setting but cannot change it.
  async currency(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.admin, '/console/#/settings');
    await page.waitForSelector('#tenant-currency');
    const out = { before: await page.inputValue('#tenant-currency') };
    await page.fill('#tenant-currency', 'eur');
    await page.click('#tenant-save');
    await page.waitForFunction(() => document.getElementById('tenant-currency-error').textContent.length > 0);
    out.badError = await page.textContent('#tenant-currency-error');
    out.badInvalid = await page.getAttribute('#tenant-currency', 'aria-invalid');
    await page.fill('#tenant-currency', 'EUR');
    await page.click('#tenant-save');
    await page.waitForFunction(() => document.getElementById('toast').textContent.includes('EUR'));
    out.toast = await page.textContent('#toast');
    out.errorAfter = await page.textContent('#tenant-currency-error');
    await shot(page, 'console-tenant-currency');
    const preselected = async (entity) => {
      await page.goto(`${base}/console/#/new/${entity}`);
      await page.waitForSelector('#create-currency');
      return page.inputValue('#create-currency');
    };
    out.newAccount = await preselected('accounts');
    out.newDeal = await preselected('opportunities');
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.signedIn === 'yes');
    out.newAccountAfterReload = await preselected('accounts');
    await shot(page, 'console-new-account-eur');
    out.money = await page.evaluate(async () => (await import('/console/ui.js')).fmtMoney(1200));
    const rep = await newPage(browser, base);
    await signIn(rep.page, base, p.rep, '/console/#/settings');
    await rep.page.waitForSelector('#tenant-currency');
    out.repSees = await rep.page.inputValue('#tenant-currency');
    out.repDisabled = await rep.page.isDisabled('#tenant-currency');
    out.repSave = await rep.page.$('#tenant-save') !== null;
    const all = [...errors, ...rep.errors];
    all.bad = [...errors.bad, ...rep.errors.bad];
    return { out, errors: all };
  },

  // Every ready-made report runs.
  async templates(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/report/new');
    await page.waitForSelector('#rb-template');
    const names = await page.$$eval('#rb-template option', (o) => o.map((x) => x.value).filter(Boolean));
    const out = {};
    for (const name of names) {
      await page.evaluate(() => { document.getElementById('report-out').replaceChildren(); document.getElementById('report-error').textContent = ''; });
      await page.selectOption('#rb-template', name);
      await page.waitForFunction(() => document.querySelector('#report-out .report-result') || document.getElementById('report-error').textContent);
      out[name] = (await page.textContent('#report-error')) || 'ok';
    }
    return { out, errors };
  },
});
