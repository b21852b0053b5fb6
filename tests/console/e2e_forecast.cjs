// The revenue forecast page (loaded by e2e.cjs): rendered from seeded closed-won history
// and open deals, what-if controls that change the figures shown against the baseline,
// the period and grouping switches, and the admins' accuracy table.

module.exports = ({ newPage, signIn, shot }) => ({
  async forecast(browser, base, p) {
    const { page, errors } = await newPage(browser, base, { viewport: { width: 1440, height: 900 } });
    // the figures shown answer this query once its response is drawn
    const shown = (part) => page.waitForFunction((s) => {
      const out = document.getElementById('fc-out');
      return out && out.getAttribute('aria-busy') === 'false' && (out.dataset.query || '').includes(s);
    }, part);
    const expected = () => page.$$eval('.fc-group .fc-expected', (cs) => cs.map((c) => c.textContent));
    const periods = () => page.$$eval('.fc-group tbody tr', (rs) => rs.map((r) => r.dataset.period));
    await signIn(page, base, p.manager, '/console/#/forecast');
    await shown('period=month');
    const first = {
      groups: await page.$$eval('.fc-group h2', (hs) => hs.map((x) => x.textContent)),
      expected: await expected(),
      periods: await periods(),
      pastBars: await page.$$eval('svg.forecast-chart rect.past', (rs) => rs.length),
      expectedBars: await page.$$eval('svg.forecast-chart rect.expected', (rs) => rs.length),
      whiskers: await page.$$eval('svg.forecast-chart line.interval', (rs) => rs.length),
      runDots: await page.$$eval('svg.forecast-chart circle.run', (cs) => cs.length),
      hover: await page.$$eval('svg.forecast-chart rect.hover title', (ts) => ts.map((t) => t.textContent)),
      unit: await page.$eval('svg.forecast-chart text.unit', (t) => t.textContent),
      trend: await page.textContent('.fc-trend'),
      season: await page.textContent('.fc-season'),
      conv: await page.textContent('.fc-conv'),
      main: await page.textContent('main'),
    };
    await shot(page, 'console-forecast');
    // what-if: new pipeline a month, then a lower win rate; each re-queries
    await page.fill('#fc-new', '10000');
    await shown('new_pipeline=10000');
    const fresh = { expected: await expected(), scenario: await page.textContent('.fc-scenario'), diff: await page.textContent('.fc-diff'), baselineTicks: await page.$$eval('svg.forecast-chart line.baseline', (ls) => ls.length) };
    await shot(page, 'console-forecast-what-if');
    await page.fill('#fc-new', '0');
    await page.fill('#fc-win', '0.5');
    await shown('win_rate_factor=0.5');
    const halved = { expected: await expected(), scenario: await page.textContent('.fc-scenario'), deltas: await page.$$eval('.fc-delta', (cs) => cs.map((c) => c.textContent)) };
    await page.fill('#fc-win', '9');
    await page.waitForFunction(() => document.getElementById('fc-status').textContent.length > 0);
    const refused = await page.textContent('#fc-status');
    await page.click('#fc-reset');
    await page.waitForFunction(() => !document.querySelector('.fc-scenario') && document.getElementById('fc-out').getAttribute('aria-busy') === 'false');
    // the period switch, then the grouping by owner
    await page.selectOption('#fc-period', 'quarter');
    await shown('period=quarter');
    const quarter = { periods: await periods(), expected: await expected() };
    await page.selectOption('#fc-period', 'year');
    await shown('period=year');
    const year = { periods: await periods() };
    await page.selectOption('#fc-group', 'owner');
    await shown('group_by=owner');
    const owners = await page.$$eval('.fc-group h2', (hs) => hs.map((x) => x.textContent));
    // an admin also sees the stored forecasts against actuals
    const admin = await newPage(browser, base, { viewport: { width: 1440, height: 900 } });
    await signIn(admin.page, base, p.admin, '/console/#/forecast');
    await admin.page.waitForSelector('#fc-accuracy table, #fc-accuracy .empty');
    const accuracy = {
      summary: await admin.page.textContent('#fc-accuracy'),
      rows: await admin.page.$$eval('#fc-accuracy tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent))),
    };
    await admin.page.locator('#fc-accuracy').scrollIntoViewIfNeeded();
    await shot(admin.page, 'console-forecast-accuracy');
    const managerAccuracy = await page.$$('#fc-accuracy');
    // a phone: the controls wrap, the tables scroll in their own box, the page never sideways
    const phone = await newPage(browser, base, { viewport: { width: 390, height: 844 }, context: { isMobile: true, hasTouch: true } });
    await signIn(phone.page, base, p.manager, '/console/#/forecast');
    await phone.page.waitForSelector('#fc-out[aria-busy=false] svg.forecast-chart');
    const phoneOverflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await shot(phone.page, 'phone-forecast');
    const all = [...errors, ...admin.errors, ...phone.errors];
    all.bad = [...errors.bad, ...admin.errors.bad, ...phone.errors.bad];
    return { first, fresh, halved, refused, quarter, year, owners, accuracy, managerHasAccuracy: managerAccuracy.length > 0, phoneOverflow, errors: all };
  },
});
