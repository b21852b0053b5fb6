// bench/web.py's browser: sign in to the console, watch the live map for DURATION_S, and print
// the fix-to-marker latencies the page recorded and its long-task count as one JSON line.
const path = require('path');
const { chromium } = require(path.resolve(__dirname, '../node_modules/playwright-core'));

(async () => {
  const [base, email, password, durationS] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${base}/console/`);
    await page.fill('#signin input[name=email]', email);
    await page.fill('#signin input[name=password]', password);
    await page.click('#signin button[type=submit]');
    await page.waitForSelector('.live-state[data-state=live]', { timeout: 60000 });
    await page.evaluate(() => { window.__fm.latencies.length = 0; window.__fm.longTasks = 0; window.__fm.longTaskMs = []; });
    await page.waitForTimeout(Number(durationS) * 1000);
    const r = await page.evaluate(() => ({ latencies: window.__fm.latencies, longTasks: window.__fm.longTasks, longTaskMs: window.__fm.longTaskMs, markers: window.__fm.markers() }));
    await page.screenshot({ path: path.resolve(__dirname, 'out/web-bench-map.png') });
    console.log(JSON.stringify({ ...r, errors }));
  } finally { await browser.close(); }
})().catch((e) => { console.error(e); process.exit(1); });
