// Scenarios of the models' life cycle in the console (loaded by e2e.cjs): the Models page
// (cards, drift, "Train now" refused and done, a rollback with its confirmation), the score
// columns of the lists, and an account's health with its manual override.
// Waits are on page state, never on time.

module.exports = ({ newPage, signIn, shot }) => ({
  async models(browser, base, p) {
    const { page, errors } = await newPage(browser, base, { viewport: { width: 1440, height: 900 } });
    await signIn(page, base, p.admin, '/console/#/models');
    const card = (name) => `#models section.model-card[data-model="${name}"]`;
    await page.waitForSelector(card('lead-score'));
    const before = {
      active: await page.getAttribute(card('lead-score'), 'data-active'),
      text: await page.textContent(card('lead-score')),
      drift: await page.$$eval(`${card('lead-score')} ul.drift li`, (li) => li.map((x) => x.textContent)),
    };
    // too little data: refused with the reason
    await page.selectOption('#train-model', 'opportunity-win');
    await page.click('#train-now');
    await page.waitForSelector('#train-status[data-outcome]', { timeout: 120000 });
    const refused = await page.textContent('#train-status');
    // a new lead-score version: trained, activated, listed first
    await page.evaluate(() => { delete document.getElementById('train-status').dataset.outcome; });
    await page.selectOption('#train-model', 'lead-score');
    await page.click('#train-now');
    await page.waitForSelector('#train-status[data-outcome]', { timeout: 180000 });
    const trained = await page.textContent('#train-status');
    await page.waitForFunction((sel) => document.querySelectorAll(`${sel} tbody tr`).length === 2, card('lead-score'));
    const after = await page.getAttribute(card('lead-score'), 'data-active');
    const buttons = await page.$$eval(`${card('lead-score')} tbody tr`, (tr) => tr.map((x) => ({ version: x.dataset.version, active: x.dataset.active, button: x.querySelector('button')?.textContent || null })));
    await shot(page, 'models');
    // roll back to the first version, after a confirmation
    await page.evaluate(() => { delete document.getElementById('train-status').dataset.outcome; });
    await page.click(`${card('lead-score')} button.rollback`);
    await page.waitForSelector('#confirm-activate[open]');
    const question = await page.textContent('#confirm-activate h2');
    await page.click('#confirm-activate-yes');
    await page.waitForSelector('#train-status[data-outcome]', { timeout: 120000 });
    const rolledBack = { status: await page.textContent('#train-status'), active: await page.getAttribute(card('lead-score'), 'data-active') };
    const mainText = await page.textContent('main');
    // at 390 px: nothing scrolls sideways but the version tables' own boxes
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(100);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    await shot(page, 'models-phone');
    await page.setViewportSize({ width: 1440, height: 900 });

    // the lists' score columns: a number with its model version, a dash when not scored
    const column = async (entity, label, search) => {
      await page.goto(`${base}/console/#/${entity}`);
      await page.waitForSelector('#list table.grid tbody tr');
      if (search) {
        await page.fill('#list-q', search);
        await page.click('form.filters button[type=submit]');
        await page.waitForFunction(() => (document.getElementById('list').dataset.query || '').includes('q=') && document.querySelectorAll('#list tbody tr').length === 1);
      }
      return page.evaluate((lbl) => {
        const heads = [...document.querySelectorAll('#list thead th')].map((th) => th.textContent);
        const i = heads.indexOf(lbl);
        const cells = {};
        for (const tr of document.querySelectorAll('#list tbody tr')) {
          const td = tr.children[i];
          cells[tr.dataset.id] = { text: td ? td.textContent : null, version: td?.querySelector('[data-version]')?.dataset.version || null };
        }
        return { heads, cells, text: document.querySelector('#list').textContent };
      }, label);
    };
    const leads = await column('leads', 'Score', p.leadName);
    const opps = await column('opportunities', 'Win %');
    const churn = await column('accounts', 'Churn risk');
    const health = await column('accounts', 'Health');

    // the account's health: computed beside the manual override, which is set and cleared
    await page.goto(`${base}/console/#/r/accounts/${p.accountId}`);
    await page.waitForSelector('#account-health #health-in-force');
    const box = async () => ({ inForce: await page.getAttribute('#account-health', 'data-in-force'), text: await page.textContent('#account-health'),
      field: await page.textContent('#fields dd[data-field=health_score] .value') });
    const computed = await box();
    await page.fill('#health-override-value', '140');
    await page.click('#health-override-save');
    await page.waitForFunction(() => document.getElementById('health-override-error').textContent.length > 0);
    const invalid = await page.textContent('#health-override-error');
    await page.fill('#health-override-value', '35');
    await page.click('#health-override-save');
    await page.waitForSelector('#account-health[data-in-force=override]');
    const overridden = await box();
    // the page's other edits still carry the current ETag: an inline edit after the override
    await page.click('#fields dd[data-field=name] button.edit');
    await page.fill('#edit-name', `${p.accountName} renamed`);
    await page.click('#fields dd[data-field=name] button[type=submit]');
    await page.waitForFunction(() => !document.querySelector('#fields dd[data-field=name] form'));
    await page.click('#health-override-clear');
    await page.waitForSelector('#account-health[data-in-force=computed]');
    const cleared = await box();
    await shot(page, 'account-health');

    // a manager reads the cards and trains, but activates nothing
    const mgr = await newPage(browser, base);
    await signIn(mgr.page, base, p.manager, '/console/#/models');
    await mgr.page.waitForSelector(card('lead-score'));
    const managerView = {
      buttons: await mgr.page.$$eval('#models button', (b) => b.map((x) => x.textContent)),
      train: await mgr.page.$$eval('#train-now', (b) => b.length),
    };
    const all = [...errors, ...mgr.errors];
    all.bad = [...errors.bad, ...mgr.errors.bad];
    return { before, refused, trained, after, buttons, question, rolledBack, mainText, overflow, leads, opps, churn, health, computed, invalid, overridden, cleared, managerView, errors: all };
  },
});
