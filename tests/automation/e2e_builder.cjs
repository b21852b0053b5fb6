// The workflow builder in Debian's headless Chromium (playwright-core): sign in through the
// console, build a workflow of a task step, save it, get the API's error naming the step
// for a bad value, add a branch with a step of its own, save version 2; then a workflow on
// `segment.entered` whose segment is chosen by name from the offered ones.
// usage: node e2e_builder.cjs BASE_URL PARAMS_JSON ; prints one JSON line.
const path = require('path');
const { chromium } = require(path.resolve(__dirname, '../../node_modules/playwright-core'));

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

async function main() {
  const [base, raw] = process.argv.slice(2);
  const p = JSON.parse(raw);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ARGS });
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 1000 } })).newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text()); });
    await page.goto(`${base}/console/`);
    await page.fill('#signin input[name=email]', p.email);
    await page.fill('#signin input[name=password]', p.password);
    await page.click('#signin button[type=submit]');
    await page.waitForFunction(() => document.body.dataset.signedIn === 'yes');
    await page.goto(`${base}/automation/builder/`);
    try {
      await page.waitForSelector('#editor fieldset', { timeout: 20000 });
    } catch (e) {
      throw new Error(`${e} url=${page.url()} errors=${errors} shown=${await page.textContent('body')}`);
    }
    await page.getByLabel('name', { exact: true }).fill(p.name);
    await page.getByLabel('new step in steps').selectOption('create_task');
    await page.click('#editor fieldset:has(> legend:text-is("steps")) > .row button');
    await page.getByLabel('subject', { exact: true }).fill('Call {{record.name}}');
    await page.getByLabel('due_in_s', { exact: true }).fill('-5');
    await page.click('#save');
    await page.waitForFunction(() => document.getElementById('errors').textContent !== '');
    const error = await page.textContent('#errors');
    await page.getByLabel('due_in_s', { exact: true }).fill('3600');
    await page.click('#save');
    await page.waitForFunction(() => document.getElementById('version').textContent === 'version 1');
    await page.waitForFunction(() => document.getElementById('out').textContent.startsWith('saved'));
    const first = await page.textContent('#out');
    // a branch after the task, with a notify step in its `then`
    await page.getByLabel('new step in steps').selectOption('branch');
    await page.click('#editor fieldset:has(> legend:text-is("steps")) > .row button');
    try {
      await page.getByLabel('new step in then').selectOption('notify', { timeout: 15000 });
    } catch (e) {
      const legends = await page.$$eval('legend', (ls) => ls.map((l) => l.textContent).join('|'));
      throw new Error(`${e} legends=${legends} errors=${errors} shown=${await page.textContent('#errors')}`);
    }
    await page.click('fieldset:has(> legend:text-is("then")) > .row button');
    const then = page.locator('fieldset:has(> legend:text-is("then"))');
    await then.locator('label:has-text("title") input').fill('Big deal');
    await then.locator('label:has-text("to (JSON)") textarea').fill('["workflow_owner"]');
    await page.click('#save');
    await page.waitForFunction(() => document.getElementById('version').textContent === 'version 2');
    const listed = await page.textContent('#list');
    // a new workflow on a segment trigger: the event keys are offered, and for a segment
    // trigger the current segments by name (the choice becomes the trigger's condition)
    await page.click('#new');
    const on = page.getByLabel('on', { exact: true });
    const events = await page.$$eval('datalist option', (o) => o.map((x) => x.value));
    await on.fill('segment.entered');
    await on.press('Tab');
    await page.waitForFunction((want) => [...document.querySelectorAll('#segment-choice option')].some((o) => o.value === want), p.segment);
    await page.selectOption('#segment-choice', p.segment);
    await page.getByLabel('name', { exact: true }).fill(`${p.name} segment`);
    await page.getByLabel('new step in steps').selectOption('create_task');
    await page.click('#editor fieldset:has(> legend:text-is("steps")) > .row button');
    await page.getByLabel('subject', { exact: true }).fill('Welcome {{record.name}}');
    await page.click('#save');
    await page.waitForFunction(() => document.getElementById('version').textContent === 'version 1');
    console.log(JSON.stringify({ error, first, listed, events, errors }));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
