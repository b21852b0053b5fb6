// Load a page in Debian's headless Chromium (playwright-core), wait for <model-viewer> to
// load its model and render, and screenshot the viewer element.
// usage: node screenshot.cjs URL OUT.png USER_DATA_DIR
const path = require('path');
const { chromium } = require(path.resolve(__dirname, '../../node_modules/playwright-core'));

(async () => {
  const [url, out, userDataDir] = process.argv.slice(2);
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 720 },
    args: [
      '--no-sandbox', '--enable-unsafe-swiftshader', '--use-angle=swiftshader',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-first-run',
    ],
  });
  const failed = [];
  const csp = []; // Content-Security-Policy violations: the page's policy must allow what it uses
  try {
    const page = await context.newPage();
    page.on('requestfailed', (r) => failed.push(r.url()));
    page.on('response', (r) => { if (r.status() >= 400) console.error(`HTTP ${r.status()} ${r.url()}`); });
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      console.error('console:', m.text());
      if (/Content Security Policy/i.test(m.text())) csp.push(m.text());
    });
    await page.goto(url, { waitUntil: 'load', timeout: 60000 });
    await page.waitForFunction(() => document.body.dataset.modelLoaded !== undefined, null, { timeout: 90000 });
    const state = await page.evaluate(() => document.body.dataset.modelLoaded);
    // let model-viewer finish its first frames (swiftshader is slow)
    await page.waitForTimeout(2500);
    // the page's area of the viewer: a locator screenshot waits for the element to be
    // "stable" over two animation frames, and a frame of software GL on a loaded machine can
    // take many seconds: a generous timeout, no stability wait
    const box = await page.locator('model-viewer').boundingBox();
    await page.screenshot({ path: out, clip: box, timeout: 150000 });
    // on a phone (where a customer opens a share link) the scene has the screen's width
    await page.setViewportSize({ width: 390, height: 844 });
    const phone = await page.evaluate(() => {
      const r = document.querySelector('model-viewer').getBoundingClientRect();
      return { width: Math.round(r.width), height: Math.round(r.height), overflow: document.documentElement.scrollWidth - window.innerWidth };
    });
    console.log(JSON.stringify({ state, failed, csp, phone }));
  } finally {
    await context.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
