// Scenarios of the API's limits as a user meets them in the console (loaded by e2e.cjs):
// implausible values refused beside their field, an asset changed meanwhile (ETag conflict
// explained, then overwritten), and the user's own time zone set on their settings page.
// Each returns what the test asserts on; waits are on page state, never on time.

const text = (page, sel) => page.textContent(sel);
const filled = (sel) => document.querySelector(sel) && document.querySelector(sel).textContent.length > 0;

module.exports = ({ newPage, signIn, shot }) => ({
  // A contact with a two-digit phone, then a deal closing in year 1: each refused with the
  // rule shown beside its field; a real phone number then saves.
  async implausible(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/new/contacts');
    await page.waitForSelector('#create-phone');
    const phoneType = await page.getAttribute('#create-phone', 'type');
    await page.fill('#create-last_name', p.lastName);
    await page.fill('#create-phone', '12');
    await page.click('#create-save');
    await page.waitForFunction(filled, '#create-phone-error');
    const phoneError = await text(page, '#create-phone-error');
    const phoneInvalid = await page.getAttribute('#create-phone', 'aria-invalid');
    await shot(page, 'limits-phone');
    await page.fill('#create-phone', '+33 4 78 00 00 00');
    await page.click('#create-save');
    await page.waitForFunction(() => /^#\/r\/contacts\/\d+$/.test(location.hash) && document.querySelector('#fields dd[data-field=phone]'));
    const phoneSaved = await text(page, '#fields dd[data-field=phone] .value');
    // a deal's close date in year 1, edited in place
    await page.evaluate((id) => { location.hash = `#/r/opportunities/${id}`; }, p.oppId);
    await page.waitForSelector('#fields dd[data-field=close_date] button.edit');
    await page.click('#fields dd[data-field=close_date] button.edit');
    await page.waitForSelector('#edit-close_date');
    const dateBounds = [await page.getAttribute('#edit-close_date', 'min'), await page.getAttribute('#edit-close_date', 'max')];
    await page.fill('#edit-close_date', '0001-01-01');
    await page.click('#fields dd[data-field=close_date] button[type=submit]');
    await page.waitForFunction(filled, '#edit-close_date-error');
    const dateError = await text(page, '#edit-close_date-error');
    await shot(page, 'limits-close-date');
    const body = await text(page, 'body');
    // a meeting typed in year 1 (or 9999) is refused on its field with the rule, never sent
    // as 1901; the form stays
    await page.evaluate(() => { location.hash = '#/new/activities'; });
    await page.waitForSelector('#create-start_at');
    await page.fill('#create-subject', 'Far meeting');
    // a date typed without its time is refused on the field, not dropped from the meeting
    // (the refusal, or the page the meeting was saved to)
    const refusal = async () => {
      await page.waitForFunction(() => document.getElementById('create-start_at-error')?.textContent || !location.hash.startsWith('#/new/'));
      return [await page.evaluate(() => document.getElementById('create-start_at-error')?.textContent || null), await page.evaluate(() => location.hash)];
    };
    await page.click('#create-start_at');
    await page.keyboard.type('12252026');
    await page.click('#create-save');
    const halfTyped = await refusal();
    const farTimes = [];
    for (const at of ['0001-01-01T10:00', '9999-12-31T10:00']) {
      if (!(await page.$('#create-start_at-error'))) break; // saved: no form left
      await page.evaluate(() => { document.getElementById('create-start_at-error').textContent = ''; });
      await page.fill('#create-start_at', at);
      await page.click('#create-save');
      farTimes.push(await refusal());
    }
    return { phoneType, phoneError, phoneInvalid, phoneSaved, dateBounds, dateError, halfTyped, farTimes, nulls: /\bnull\b|undefined|NaN/.test(body), errors };
  },

  // Someone else changes an asset while this user edits it: saving says so, with Reload and
  // Overwrite; Overwrite saves this user's value.
  async assetConflict(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, `/console/#/r/accounts/${p.account}`);
    await page.waitForSelector('#account-assets button.edit-asset');
    await page.click('#account-assets button.edit-asset');
    await page.waitForSelector('#edit-asset-serial');
    // the other writer, through the API with their own token
    const other = await fetch(`${base}/api/v1/assets/${p.asset}`, {
      method: 'PATCH',
      headers: { Authorization: `Bearer ${p.otherToken}`, 'If-Match': '*', 'Content-Type': 'application/json' },
      body: JSON.stringify({ serial: 'SN-THEIRS' }),
    });
    await page.fill('#edit-asset-serial', 'SN-MINE');
    await page.click('#edit-asset-save');
    await page.waitForSelector('#edit-asset-overwrite');
    const conflict = await text(page, '#edit-asset-error');
    await shot(page, 'limits-asset-conflict');
    await page.click('#edit-asset-overwrite');
    await page.waitForFunction(() => !document.getElementById('edit-asset-serial') && /SN-MINE/.test(document.querySelector('#account-assets tbody').textContent));
    const rows = await page.$$eval('#account-assets tbody tr', (tr) => tr.map((r) => [...r.cells].map((c) => c.textContent)));
    return { otherStatus: other.status, conflict, rows, errors };
  },

  // The header says which zone times are in and leads to the user's settings, where an
  // unknown zone is refused beside the field and a real one is saved and shown at once.
  async settingsZone(browser, base, p) {
    const { page, errors } = await newPage(browser, base, { context: { timezoneId: 'America/New_York', locale: 'en-US' } });
    await signIn(page, base, p.user, '/console/#/accounts');
    await page.waitForSelector('#tz-note');
    const noteBefore = await text(page, '#tz-note');
    await page.click('#tz-note');
    await page.waitForSelector('#settings-timezone');
    const zoneBefore = await page.inputValue('#settings-timezone');
    const who = await text(page, '#settings-who');
    await page.fill('#settings-timezone', 'Mars/Olympus');
    await page.click('#settings-save');
    await page.waitForFunction(filled, '#settings-timezone-error');
    const zoneError = await text(page, '#settings-timezone-error');
    const invalid = await page.getAttribute('#settings-timezone', 'aria-invalid');
    await page.click('#settings-use-device');
    const deviceZone = await page.inputValue('#settings-timezone');
    await page.fill('#settings-timezone', 'Asia/Tokyo');
    await page.click('#settings-save');
    await page.waitForFunction(() => document.getElementById('tz-note').textContent === 'Times in Asia/Tokyo');
    const errorAfter = await text(page, '#settings-timezone-error');
    await shot(page, 'limits-settings');
    // still so after a reload: it is the account's setting, not the browser's
    await page.reload();
    await page.waitForSelector('#tz-note');
    const noteAfterReload = await text(page, '#tz-note');
    const body = await text(page, 'body');
    return { noteBefore, zoneBefore, who, zoneError, invalid, deviceZone, errorAfter, noteAfterReload, nulls: /\bnull\b|undefined|NaN/.test(body), errors };
  },
});
