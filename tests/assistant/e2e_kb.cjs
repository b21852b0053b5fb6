// The knowledge base screen, the assistant's figures and the customer bot in Debian's
// headless Chromium (playwright-core): a manager writes an article, searches it with a
// question, opens the Assistant view; a visitor asks the chat widget and gets the article.
// usage: node e2e_kb.cjs BASE_URL PARAMS_JSON ; prints one JSON line with the result.
const { launch, newPage, signIn, report } = require('../console/e2e.cjs');

(async () => {
  const [base, raw] = process.argv.slice(2);
  const p = JSON.parse(raw);
  const browser = await launch();
  try {
    const { context, page, errors } = await newPage(browser, base, { viewport: { width: 1280, height: 900 } });
    await signIn(page, base, p.user, '/console/#/kb');
    await page.click('#kb-new');
    // nothing written: each missing part said beside it in the console's words (not the
    // browser's bubble); the territory is chosen by its name
    await page.waitForSelector('#kb-form');
    await page.click('#kb-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('kb-form-title-error').textContent);
    const empty = await page.evaluate(() => ({
      title: document.getElementById('kb-form-title-error').textContent,
      body: document.getElementById('kb-form-body-error').textContent,
      invalid: [...document.querySelectorAll('#kb-form [aria-invalid=true]')].map((x) => x.id),
      focus: document.activeElement.id,
      territories: [...document.querySelectorAll('#kb-form-territory_id option')].map((o) => o.textContent),
    }));
    await page.fill('#kb-form input[name=title]', p.title);
    await page.selectOption('#kb-form select[name=audience]', 'public');
    await page.fill('#kb-form input[name=tags]', 'heat pump, defrost');
    await page.fill('#kb-form textarea[name=body]', p.body);
    await page.click('#kb-form button[type=submit]');
    await page.waitForSelector('#kb-title');
    const shown = await page.textContent('#kb-title');
    const hash = await page.evaluate(() => location.hash);
    await page.goto(base + '/console/#/kb');
    await page.fill('#kb-q', p.question);
    await page.press('#kb-q', 'Enter');
    await page.waitForSelector('#kb-list table');
    const first = await page.textContent('#kb-list tbody tr:first-child td:first-child');
    // on a phone the articles are cards: the excerpt has the screen's width, not a word's
    await page.setViewportSize({ width: 390, height: 844 });
    const phone = await page.$eval('#kb-list tbody tr:first-child td:nth-child(4)', (td) => ({
      width: td.getBoundingClientRect().width,
      overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    }));
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(base + '/console/#/assistant');
    await page.waitForSelector('#assistant-figures table, #assistant-figures p');
    await page.waitForSelector('#bot-settings form');
    const figures = await page.textContent('#assistant-figures');
    // a visitor on a customer's website: the widget answers from the public article
    const visitor = await context.newPage();
    visitor.on('pageerror', (e) => errors.push(String(e)));
    await visitor.goto(base + '/health');
    await visitor.evaluate((src) => {
      const s = document.createElement('script');
      s.src = src;
      document.body.append(s);
    }, base + '/engage/chat/widget.js');
    await visitor.waitForSelector('input[aria-label=Message]');
    // an e-mail address it cannot use is said, and the chat goes on without it (the widget
    // reconnected with it again and again, in silence)
    await visitor.fill('input[aria-label="Your e-mail"]', 'dana@');
    await visitor.press('input[aria-label="Your e-mail"]', 'Tab');
    await visitor.waitForFunction(() => document.querySelector('[aria-label=Chat]').textContent.includes('e-mail address'), null, { timeout: 5000 }).catch(() => {});
    const badEmail = {
      said: await visitor.textContent('[aria-label=Chat] [aria-live]'),
      invalid: await visitor.getAttribute('input[aria-label="Your e-mail"]', 'aria-invalid'),
    };
    await visitor.waitForTimeout(500);
    await visitor.fill('input[aria-label=Message]', p.question);
    await visitor.press('input[aria-label=Message]', 'Enter');
    await visitor.waitForFunction(() => document.querySelector('[aria-label=Chat]').textContent.includes('/help/articles/'), null, { timeout: 30000 });
    const chat = await visitor.textContent('[aria-label=Chat]');
    console.log(report({ empty, badEmail, shown, hash, first, phone, figures, chat, errors }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
