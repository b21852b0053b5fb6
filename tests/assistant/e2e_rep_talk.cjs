// The rep's phone (PWA) with its push-to-talk assistant in Debian's headless Chromium
// (playwright-core) at 390 px, touch: each spoken step is one browser whose fake microphone
// plays that step's WAV (made by piper in the test); the sign-in is carried between them.
// usage: node e2e_rep_talk.cjs BASE_URL PARAMS_JSON ; prints one JSON line with the result.
const path = require('path');
const { chromium } = require(path.resolve(__dirname, '../../node_modules/playwright-core'));

const BASE_ARGS = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'];

/** One browser whose microphone plays `wav` (none: a microphone the site is not allowed). */
async function open(base, wav, state) {
  const args = wav ? [...BASE_ARGS, '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${wav}%noloop`] : [...BASE_ARGS, '--use-fake-device-for-media-stream'];
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args });
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, bypassCSP: true, storageState: state });
  if (wav) await context.grantPermissions(['microphone'], { origin: base });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(m.text()); });
  return { browser, context, page, errors };
}

async function ready(page, base) {
  await page.goto(base + '/console/rep/');
  await page.waitForFunction(() => document.body.dataset.ready === 'yes', null, { timeout: 30000 });
}

/** Hold the talk button (pointer, or the Space key) while the microphone plays; the answer,
 * with the recording's length as the server measured it. `busyMs`: the page's main thread is
 * blocked that long from 1 s into the hold (a phone busy drawing), through the speech. */
async function hold(page, seconds, how, busyMs = 0) {
  const talk = page.locator('#talk');
  await page.evaluate(() => { delete document.getElementById('talk-answer').dataset.kind; });
  if (how === 'key') {
    await talk.focus();
    await page.keyboard.down(' ');
  } else {
    await talk.hover();
    await page.mouse.down();
  }
  await page.waitForFunction(() => document.getElementById('talk').getAttribute('aria-pressed') === 'true');
  const held = Date.now();
  if (busyMs) {
    await page.waitForTimeout(1000);
    await page.evaluate((ms) => { const t = performance.now(); while (performance.now() - t < ms); }, busyMs);
  }
  await page.waitForTimeout(Math.max(0, Math.round(seconds * 1000) + 1500 - (Date.now() - held)));
  const sent = page.waitForResponse((r) => r.url().includes('/api/v1/assistant/voice'), { timeout: 30000 });
  const heldS = (Date.now() - held) / 1000;
  if (how === 'key') await page.keyboard.up(' '); else await page.mouse.up();
  const recorded = await (await sent).json().then((b) => b.audio_seconds, () => null);
  await page.waitForFunction(() => ['answer', 'question', 'error'].includes(document.getElementById('talk-answer').dataset.kind), null, { timeout: 30000 });
  return {
    heldS,
    recorded,
    kind: await page.$eval('#talk-answer', (b) => b.dataset.kind),
    intent: await page.$eval('#talk-answer', (b) => b.dataset.intent || ''),
    heard: await page.$eval('#talk-answer', (b) => (b.querySelector('.talk-heard') || { textContent: '' }).textContent),
    text: await page.$eval('#talk-answer', (b) => b.textContent),
    // the server's own words, without the "You said" line
    said: await page.$eval('#talk-answer', (b) => (b.querySelector('.talk-question, .talk-answer') || { textContent: '' }).textContent),
  };
}

/** Hold until `ok(answer)`, at most five times: a rep repeats a command the server
 * misheard, and the fake microphone's loop can start mid-word. Every try is kept in
 * `tries` so a failing run shows what was heard; after the last, the driver fails. */
async function holdUntil(page, seconds, how, ok, tries, busyMs = 0) {
  let a;
  for (let i = 0; i < 5; i += 1) {
    a = await hold(page, seconds, how, busyMs);
    tries.push(a);
    if (ok(a)) break;
    if (a.kind === 'question' && (await page.$('#talk-answer .talk-no'))) await page.click('#talk-answer .talk-no');
  }
  if (!ok(a)) throw new Error(`misheard five times: ${JSON.stringify(tries.slice(-5))}`);
  return a;
}

/** "Yes, do it"; the answer once the day has been loaded again. */
async function yes(page) {
  if (!(await page.$('#talk-answer .talk-yes'))) throw new Error(`no question to confirm: ${await page.textContent('#talk-answer')}`);
  await page.evaluate(() => { delete document.body.dataset.ready; });
  await page.click('#talk-answer .talk-yes');
  await page.waitForFunction(() => document.getElementById('talk-answer').dataset.kind === 'answer', null, { timeout: 30000 });
  await page.waitForFunction(() => document.body.dataset.ready === 'yes', null, { timeout: 30000 });
  return page.textContent('#talk-answer');
}

const out = { errors: [], tries: [] };
(async () => {
  const [base, raw] = process.argv.slice(2);
  const p = JSON.parse(raw);
  const axePath = require.resolve('axe-core/axe.min.js', { paths: [path.resolve(__dirname, '../../node_modules')] });

  // 1. sign in, "next stop" (pointer hold), axe over the page
  let s = await open(base, p.steps.next.wav);
  try {
    await s.page.goto(base + '/console/rep/');
    await s.page.fill('#rep-signin input[name=email]', p.user.email);
    await s.page.fill('#rep-signin input[name=password]', p.user.password);
    await s.page.click('#rep-signin button[type=submit]');
    await s.page.waitForFunction(() => document.body.dataset.ready === 'yes', null, { timeout: 30000 });
    out.firstNext = await s.page.textContent('#next h2');
    out.talkBox = await s.page.$eval('#talk', (b) => { const r = b.getBoundingClientRect(); return { width: r.width, height: r.height, text: b.textContent }; });
    out.next = await holdUntil(s.page, p.steps.next.seconds, 'pointer', (a) => a.intent === 'next_stop' && a.heard.includes('next stop'), out.tries, p.busyMs);
    // the recorder's resampling: speech-band sound kept, sound above 8 kHz removed rather than
    // folded into the speech band (RMS of a sine after resampling, as a share of its own)
    out.resampled = await s.page.evaluate(async () => {
      const { resample, RATE } = await import('/console/voice.js');
      const rms = (x) => Math.sqrt(x.slice(200, -200).reduce((k, v) => k + v * v, 0) / (x.length - 400));
      const gain = (hz, from) => {
        const x = new Float32Array(from).map((_, i) => Math.sin((2 * Math.PI * hz * i) / from));
        const y = resample(x, from);
        return { hz, from, n: y.length, gain: rms(y) / rms(x) };
      };
      return { rate: RATE, gains: [gain(1000, 48000), gain(3000, 44100), gain(12000, 48000), gain(10000, 44100)] };
    });
    await s.page.addScriptTag({ path: axePath });
    out.axe = await s.page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ['violations'] });
      return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
    });
    out.overflow = await s.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    out.errors.push(...s.errors);
    s.state = await s.context.storageState();
  } finally { await s.browser.close(); }
  const state = s.state;

  // 2. "check in at my stop" held with the Space key, confirmed with "Yes": the stop is checked in
  s = await open(base, p.steps.checkin.wav, state);
  try {
    await ready(s.page, base);
    out.checkinQuestion = await holdUntil(s.page, p.steps.checkin.seconds, 'key', (a) => a.kind === 'question' && a.intent === 'check_in', out.tries);
    out.checkinDone = await yes(s.page);
    out.checkinDisabled = await s.page.$eval('#checkin', (b) => b.disabled);
    out.errors.push(...s.errors);
  } finally { await s.browser.close(); }

  // 3. "done replaced the seal", "Yes": the stop is done, the next one is current; then offline
  s = await open(base, p.steps.done.wav, state);
  try {
    await ready(s.page, base);
    out.doneQuestion = await holdUntil(s.page, p.steps.done.seconds, 'pointer', (a) => a.kind === 'question' && a.intent === 'complete_visit' && a.said.includes('replaced the seal'), out.tries);
    out.doneAnswer = await yes(s.page);
    out.doneStops = await s.page.$$eval('#stops li.done', (l) => l.map((x) => Number(x.dataset.wo)));
    out.nextAfter = await s.page.textContent('#next h2');
    await s.context.setOffline(true);
    await s.page.waitForFunction(() => document.getElementById('talk').textContent.includes('connection'));
    out.offlineButton = await s.page.textContent('#talk');
    await s.page.locator('#talk').dispatchEvent('pointerdown');
    await s.page.waitForFunction(() => document.getElementById('talk-answer').dataset.kind === 'error');
    out.offlineMessage = await s.page.textContent('#talk-answer');
    out.errors.push(...s.errors);
  } finally { await s.browser.close(); }

  // 4. no microphone permission: the denial is explained
  s = await open(base, null, state);
  try {
    await ready(s.page, base);
    await s.page.locator('#talk').dispatchEvent('pointerdown');
    await s.page.waitForFunction(() => document.getElementById('talk-answer').dataset.kind === 'error', null, { timeout: 15000 });
    out.denied = await s.page.textContent('#talk-answer');
    out.errors.push(...s.errors);
  } finally { await s.browser.close(); }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e, JSON.stringify(out)); process.exit(1); });
