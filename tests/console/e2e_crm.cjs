// Scenarios of the CRM's record pages, global search and reports (loaded by e2e.cjs).
// Each returns what the test asserts on; waits are on page state, never on time.

module.exports = ({ newPage, signIn, shot }) => ({
  // A sales rep creates a lead (first with a bad value: the API's error shows on the field),
  // converts it, edits the deal inline (an invalid value, then a valid one, then a conflict),
  // finds a misspelled contact with the search box and the keyboard, and deletes an account.
  async records(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/leads');
    await page.waitForSelector('#new-record');
    await page.click('#new-record');
    await page.waitForSelector('#create-last_name');
    await page.fill('#create-first_name', 'Ada');
    await page.fill('#create-last_name', 'Quist');
    await page.fill('#create-company', 'Quist Pumps');
    await page.fill('#create-estimated_amount', '-5');
    await page.fill('#create-currency', 'EUR');
    await page.click('#create-save');
    await page.waitForFunction(() => document.getElementById('create-estimated_amount-error').textContent.length > 0);
    const fieldError = await page.textContent('#create-estimated_amount-error');
    const savingAfterError = await page.textContent('#create-save');
    await page.fill('#create-estimated_amount', '12000');
    await page.click('#create-save');
    await page.waitForFunction(() => /^#\/r\/leads\/\d+$/.test(location.hash) && document.getElementById('convert-lead'));
    const leadId = Number((await page.evaluate(() => location.hash)).split('/').pop());
    await shot(page, 'crm-lead');
    // conversion wizard
    await page.click('#convert-lead');
    await page.waitForSelector('#convert-dialog[open]');
    await page.fill('#convert-opp-name', 'Quist pumps retrofit');
    await page.click('#convert-go');
    await page.waitForFunction(() => /^#\/r\/opportunities\/\d+$/.test(location.hash) && document.querySelector('#fields dd[data-field=amount]'));
    const oppId = Number((await page.evaluate(() => location.hash)).split('/').pop());
    const amountShown = await page.textContent('#fields dd[data-field=amount] .value');
    const accountShown = await page.textContent('#fields dd[data-field=account_id] .value');
    await page.waitForFunction(() => !document.querySelector('#fields dd[data-field=account_id] .value').textContent.includes('…'));
    const accountName = await page.textContent('#fields dd[data-field=account_id] .value');
    // inline edit: invalid, then valid
    await page.click('#fields dd[data-field=probability] button.edit');
    await page.fill('#edit-probability', '150');
    await page.click('#fields dd[data-field=probability] button[type=submit]');
    await page.waitForFunction(() => (document.getElementById('edit-probability-error') || {}).textContent);
    const inlineError = await page.textContent('#edit-probability-error');
    await page.fill('#edit-probability', '40');
    await page.click('#fields dd[data-field=probability] button[type=submit]');
    await page.waitForFunction(() => !document.querySelector('#fields dd[data-field=probability] form') && document.querySelector('#fields dd[data-field=probability] .value').textContent === '40');
    // somebody else changes the deal meanwhile: the next save explains the conflict
    await page.evaluate(async (id) => {
      const t = localStorage.getItem('fm.token');
      await fetch(`/api/v1/opportunities/${id}`, { method: 'PATCH', headers: { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json', 'If-Match': '*' }, body: JSON.stringify({ name: 'Renamed elsewhere' }) });
    }, oppId);
    await page.click('#fields dd[data-field=amount] button.edit');
    await page.fill('#edit-amount', '15000');
    await page.click('#fields dd[data-field=amount] button[type=submit]');
    await page.waitForFunction(() => /Changed by/.test((document.getElementById('edit-amount-error') || {}).textContent || ''));
    const conflict = await page.textContent('#edit-amount-error');
    await page.click('#edit-amount-error button:has-text("Overwrite")');
    await page.waitForFunction(() => !document.querySelector('#fields dd[data-field=amount] form'));
    const amountAfter = await page.textContent('#fields dd[data-field=amount] .value');
    await shot(page, 'crm-opportunity');
    // global search with a typo, keyboard only
    await page.keyboard.press('Escape');
    await page.click('main');
    await page.keyboard.press('/');
    await page.keyboard.type(p.misspelled);
    await page.waitForFunction((qq) => document.getElementById('search-results').dataset.query === qq && !document.getElementById('search-results').hidden, p.misspelled);
    const hits = await page.$$eval('#search-results li[data-type]', (li) => li.map((x) => ({ type: x.dataset.type, id: x.dataset.id, text: x.textContent })));
    await shot(page, 'crm-search');
    const idx = hits.findIndex((x) => x.type === 'contacts' && Number(x.id) === p.contact);
    for (let i = 0; i < idx; i += 1) await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    await page.waitForFunction((id) => location.hash === `#/r/contacts/${id}` && document.getElementById('record-title'), p.contact);
    const contactTitle = await page.textContent('#record-title');
    // create an account, then delete it with the confirmation
    await page.goto(`${base}/console/#/new/accounts`);
    await page.waitForSelector('#create-name');
    await page.fill('#create-name', 'Short-lived Ltd');
    await page.click('#create-save');
    await page.waitForSelector('#delete-record');
    const accId = Number((await page.evaluate(() => location.hash)).split('/').pop());
    await page.click('#delete-record');
    await page.waitForSelector('#confirm-delete[open]');
    await page.click('#confirm-delete-yes');
    await page.waitForFunction(() => location.hash === '#/accounts');
    const text = await page.textContent('body');
    return { leadId, oppId, fieldError, savingAfterError, amountShown, accountShown, accountName, inlineError, conflict, amountAfter, hits, contactTitle, accId, nulls: /\bnull\b|nullnull|undefined|NaN/.test(text), errors };
  },

  // What a role may do: which buttons each page offers.
  async permissions(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/activities');
    const out = {};
    for (const [name, hash] of Object.entries(p.pages)) {
      await page.evaluate((hh) => { delete document.body.dataset.view; location.hash = hh; }, hash);
      await page.waitForFunction(() => document.body.dataset.view && !document.querySelector('main').textContent.includes('…'));
      await page.waitForFunction(() => !document.querySelector('#fields') || document.querySelector('#audit'));
      out[name] = {
        create: !!(await page.$('#new-record')),
        edit: (await page.$$('#fields button.edit')).length,
        del: !!(await page.$('#delete-record')),
        ack: await page.$$eval('#alerts button.ack', (b) => b.filter((x) => !x.disabled).length).catch(() => 0),
        text: (await page.textContent('main')).slice(0, 300),
      };
    }
    return { out, errors };
  },
});
