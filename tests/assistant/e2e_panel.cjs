// The assistant panel in Debian's headless Chromium (playwright-core): typed command, a write
// confirmed with "Do it", and push-to-talk with Chromium's fake microphone playing a WAV.
// usage: node e2e_panel.cjs BASE_URL PARAMS_JSON ; prints one JSON line with the result.
const { launch, newPage, signIn, report } = require('../console/e2e.cjs');

(async () => {
  const [base, raw] = process.argv.slice(2);
  const p = JSON.parse(raw);
  const browser = await launch(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${p.wav}%noloop`]);
  try {
    const { context, page, errors } = await newPage(browser, base);
    await context.grantPermissions(['microphone'], { origin: base });
    await signIn(page, base, p.user, '/console/#/accounts');
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
    console.log(report({ found, question, done, undone, heard, voiceIntent, hash: await page.evaluate(() => location.hash), errors }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
