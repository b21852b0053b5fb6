// bench/web.py's browser: sign in to the console, watch the live map for DURATION_S, and print
// the fix-to-marker latencies the page recorded (User Timing measures 'fm:fix-to-marker') and
// its long tasks as one JSON line. The observers are the probe's own (an init script), so the
// page carries no benchmark code; they keep every entry even when the page clears its buffer.
const path = require('path');
const { chromium } = require(path.resolve(__dirname, '../node_modules/playwright-core'));

(async () => {
  const [base, email, password, durationS] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    await page.addInitScript(() => {
      const seen = { latencies: [], longTaskMs: [], recording: false };
      Object.defineProperty(window, '__benchProbe', { value: seen });
      new PerformanceObserver((list) => {
        if (!seen.recording) return;
        for (const e of list.getEntries()) if (e.name === 'fm:fix-to-marker') seen.latencies.push(e.duration);
      }).observe({ type: 'measure' });
      try {
        new PerformanceObserver((list) => {
          if (!seen.recording) return;
          for (const e of list.getEntries()) if (e.duration > 100) seen.longTaskMs.push(Math.round(e.duration));
        }).observe({ type: 'longtask' });
      } catch { /* longtask not supported: the count stays 0 */ }
    });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${base}/console/`);
    await page.fill('#signin input[name=email]', email);
    await page.fill('#signin input[name=password]', password);
    await page.click('#signin button[type=submit]');
    await page.waitForSelector('.live-state[data-state=live]', { timeout: 60000 });
    await page.evaluate(() => { window.__benchProbe.recording = true; });
    await page.waitForTimeout(Number(durationS) * 1000);
    const r = await page.evaluate(() => {
      const seen = window.__benchProbe;
      return {
        latencies: seen.latencies,
        longTasks: seen.longTaskMs.length,
        longTaskMs: seen.longTaskMs,
        markers: document.querySelectorAll('#device-list li[data-device-id]').length,
      };
    });
    await page.screenshot({ path: path.resolve(__dirname, 'out/web-bench-map.png') });
    console.log(JSON.stringify({ ...r, errors }));
  } finally { await browser.close(); }
})().catch((e) => { console.error(e); process.exit(1); });
