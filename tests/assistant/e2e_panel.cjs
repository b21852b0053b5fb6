// The assistant panel in Debian's headless Chromium (playwright-core): typed command, a write
// confirmed with "Do it", and push-to-talk with Chromium's fake microphone playing a WAV.
// usage: node e2e_panel.cjs BASE_URL PARAMS_JSON ; prints one JSON line with the result.
const path = require('path');
const { chromium } = require(path.resolve(__dirname, '../../node_modules/playwright-core'));

(async () => {
  const [base, raw] = process.argv.slice(2);
  const p = JSON.parse(raw);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${p.wav}%noloop`],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.grantPermissions(['microphone'], { origin: base });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.goto(base + '/console/#/accounts');
    await page.fill('#signin input[name=email]', p.user.email);
    await page.fill('#signin input[name=password]', p.user.password);
    await page.click('#signin button[type=submit]');
    await page.waitForFunction(() => document.body.dataset.signedIn === 'yes');
    await page.click('#assistant-open');
    const bots = () => page.locator('.assistant-log li.assistant-bot');
    const ask = async (text) => {
      const n = await bots().count();
      await page.fill('.assistant-form input[name=text]', text);
      await page.press('.assistant-form input[name=text]', 'Enter');
      await page.waitForFunction((k) => document.querySelectorAll('.assistant-log li.assistant-bot').length > k, n);
      return bots().nth(n);
    };
    const found = await (await ask(p.search)).textContent();
    const pending = await ask(p.create);
    const question = await pending.textContent();
    const n = await bots().count();
    await pending.locator('button.assistant-confirm').click();
    await page.waitForFunction((k) => document.querySelectorAll('.assistant-log li.assistant-bot').length > k, n);
    const done = await bots().nth(n).locator('span').textContent();
    // undo what was just created
    const m = await bots().count();
    await bots().nth(n).locator('button.assistant-undo').click();
    await page.waitForFunction((k) => document.querySelectorAll('.assistant-log li.assistant-bot').length > k, m);
    const undone = await bots().nth(m).textContent();
    // push-to-talk: hold the button while the fake microphone plays the recording
    const before = await bots().count();
    const talk = page.locator('.assistant-talk');
    await talk.hover();
    await page.mouse.down();
    await page.waitForFunction(() => document.querySelector('.assistant-talk').getAttribute('aria-pressed') === 'true');
    await page.waitForTimeout(Math.round(p.seconds * 1000) + 1200);
    await page.mouse.up();
    await page.waitForFunction((k) => document.querySelectorAll('.assistant-log li.assistant-bot').length > k, before, { timeout: 30000 });
    const heard = await page.locator('.assistant-log li.assistant-me').last().textContent();
    const spoken = bots().nth(before);
    const voiceIntent = await spoken.getAttribute('data-intent');
    await page.waitForFunction(() => location.hash === '#/map', null, { timeout: 10000 }).catch(() => {});
    console.log(JSON.stringify({ found, question, done, undone, heard, voiceIntent, hash: await page.evaluate(() => location.hash), errors }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
