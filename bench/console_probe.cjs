// bench/console.py's browser: sign in once, then load the list, record and dashboard pages
// N times each from a fresh navigation, timing navigation start to the page's first
// meaningful content (the list's first row, the record's fields, the dashboard's tiles ready).
// Prints one JSON line {list: [ms...], record: [...], dashboard: [...]}.
const path = require('path');
const { chromium } = require(path.resolve(__dirname, '../node_modules/playwright-core'));

(async () => {
  const [base, email, password, n, accountId, dashboardId] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  try {
    const page = await (await browser.newContext({ viewport: { width: 1440, height: 900 } })).newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${base}/console/#/accounts`);
    await page.fill('#signin input[name=email]', email);
    await page.fill('#signin input[name=password]', password);
    await page.click('#signin button[type=submit]');
    await page.waitForFunction(() => document.body.dataset.signedIn === 'yes');
    const pages = {
      list: ['#/contacts', '#list table tbody tr'],
      record: [`#/r/accounts/${accountId}`, '#audit'],
      dashboard: [`#/dashboard/${dashboardId}`, '#dashboard[data-ready=yes]'],
    };
    const out = { errors };
    for (const [name, [hash, selector]] of Object.entries(pages)) {
      out[name] = [];
      for (let i = 0; i < Number(n); i += 1) {
        await page.goto('about:blank');
        const t0 = Date.now();
        await page.goto(`${base}/console/${hash}`);
        await page.waitForSelector(selector, { state: 'attached', timeout: 60000 });
        out[name].push(Date.now() - t0);
      }
    }
    console.log(JSON.stringify(out));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
