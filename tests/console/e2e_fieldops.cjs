// Scenarios of the console's field-work pieces (loaded by e2e.cjs): a work order's photos
// from the phone, the reps' field analytics, and the fleet's rollouts panel.

module.exports = ({ newPage, signIn, shot }) => ({
  async fieldops(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.manager, `/console/#/r/work_orders/${p.workOrderId}`);
    await page.waitForFunction(() => {
      const imgs = [...document.querySelectorAll('.attachments img')];
      return imgs.length > 0 && imgs.every((i) => i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0);
    });
    const attachments = await page.$$eval('.attachments li', (ls) => ls.map((l) => l.textContent));
    const thumbWidth = await page.$eval('.attachments img', (i) => i.naturalWidth);
    await shot(page, 'console-work-order-photos');
    const [popup] = await Promise.all([
      page.waitForEvent('popup'),
      page.click('.attachments li button.linkish'),
    ]);
    await popup.waitForLoadState();
    const opened = popup.url();
    await popup.close();
    await page.goto(`${base}/console/#/fieldwork`);
    await page.waitForSelector('#fieldwork-table[aria-busy=false]');
    const reps = await page.$$eval('#fieldwork-table tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
    await page.click('#fieldwork-table tbody tr');
    await page.waitForSelector('#fieldwork-days table');
    const days = await page.$$eval('#fieldwork-days tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
    await shot(page, 'console-fieldwork');
    await page.goto(`${base}/console/#/r/accounts/${p.accountId}`);
    await page.waitForSelector('#customer-value p');
    const customerValue = await page.textContent('#customer-value');
    await page.goto(`${base}/console/#/segments`);
    await page.waitForFunction(() => document.body.dataset.view === 'segments' && document.querySelector('.view-root h1 + *'));
    const segments = await page.textContent('.view-root');
    await page.goto(`${base}/console/#/fleet`);
    await page.waitForSelector('#rollouts table, #rollouts p.muted');
    const rolloutsShown = await page.isVisible('#rollouts');
    return { attachments, thumbWidth, opened, reps, days, rolloutsShown, customerValue, segments, errors, bad: errors.bad };
  },
});
