// What a new user clicking through the console hit (loaded by e2e.cjs): hostile input shown
// as text and refused on the field in words, choices the API refuses not offered, names
// instead of ids in references and the audit history, equipment on the account page, bar
// charts of negative values. Each returns what the test asserts on.

module.exports = ({ newPage, signIn, shot }) => ({
  // A user whose time zone (users.timezone) is not the browser's: the record page, the
  // header's zone note, the edit form's datetime input and the activities month grid.
  async zone(browser, base, p) {
    const { page, errors } = await newPage(browser, base, { context: { timezoneId: p.browserZone, locale: 'en-US' } });
    await signIn(page, base, p.user, `/console/#/r/activities/${p.activityId}`);
    await page.waitForSelector('#tz-note');
    await page.waitForFunction((s) => document.querySelector('main').textContent.includes(s), p.subject);
    const out = {
      browserZone: await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone),
      note: await page.textContent('#tz-note'),
      main: await page.textContent('main'),
    };
    await page.goto(`${base}/console/#/activities/${p.month}`);
    await page.waitForSelector('#calendar .cal-item');
    out.days = await page.$$eval('#calendar .day', (ds) => ds.filter((d) => d.querySelector('.cal-item')).map((d) => d.dataset.day));
    await shot(page, 'zone-activities');
    return { out, errors };
  },
  async qa(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, '/console/#/new/leads');
    await page.waitForSelector('#create-last_name');
    const out = { sourceOffered: !!(await page.$('#create-source')) };
    out.createStatusChoices = await page.$$eval('#create-status option', (o) => o.map((x) => x.value));
    // markup in a name is text; an out-of-range amount is refused on its field, in words
    await page.fill('#create-last_name', p.hostile);
    await page.fill('#create-company', p.company);
    // letters the number input cannot read: refused on the field, not dropped from the lead
    await page.click('#create-estimated_amount');
    await page.keyboard.type('12e');
    await page.click('#create-save');
    await page.waitForFunction(() => document.getElementById('create-estimated_amount-error').textContent);
    out.lettersError = await page.textContent('#create-estimated_amount-error');
    out.lettersStay = await page.evaluate(() => location.hash);
    await page.fill('#create-estimated_amount', '1e30');
    await page.click('#create-save');
    await page.waitForFunction(() => document.getElementById('create-estimated_amount-error').textContent);
    out.amountError = await page.textContent('#create-estimated_amount-error');
    out.keptName = await page.inputValue('#create-last_name');
    await page.fill('#create-estimated_amount', '5000');
    await page.click('#create-save');
    await page.waitForSelector('#record-title');
    out.title = await page.textContent('#record-title');
    out.pwned = await page.evaluate(() => document.body.dataset.pwned || null);
    // a lead's status is edited without "converted" (only the wizard converts)
    await page.click('button[aria-label="Edit Status"]');
    out.editStatusChoices = await page.$$eval('#edit-status option', (o) => o.map((x) => x.value));
    await page.keyboard.press('Escape');
    // convert: the deal names its lead, and the audit history names people and records
    await page.click('#convert-lead');
    await page.waitForSelector('dialog[open] #convert-go');
    // a negative amount is refused beside it in the console's words (not the browser's bubble)
    await page.fill('#convert-opp-amount', '-5');
    await page.click('#convert-go');
    await page.waitForFunction(() => document.getElementById('convert-opp-amount-error').textContent);
    out.convertAmount = await page.evaluate(() => ({
      error: document.getElementById('convert-opp-amount-error').textContent,
      invalid: document.getElementById('convert-opp-amount').getAttribute('aria-invalid'),
      focus: document.activeElement.id,
    }));
    await page.fill('#convert-opp-amount', '5000');
    await page.click('#convert-go');
    await page.waitForFunction(() => /#\/r\/opportunities\/\d+/.test(location.hash));
    const lead = 'dd[data-field=lead_id] .value';
    await page.waitForFunction((sel) => { const e = document.querySelector(sel); return e && !e.textContent.includes('…'); }, lead);
    out.dealLead = await page.textContent(lead);
    await page.click('#audit summary');
    await page.waitForSelector('#audit ol.audit, #audit p');
    await page.waitForFunction(() => !document.getElementById('audit').textContent.includes('…'));
    out.audit = await page.textContent('#audit');
    await shot(page, 'qa-deal-audit');
    // a saved view's name too long for the API: the refusal is on the name, in words
    await page.goto(`${base}/console/#/leads`);
    await page.waitForSelector('#view-name');
    out.bulkStatusChoices = await page.$$eval('#bulk-status option', (o) => o.map((x) => x.value));
    await page.click('#view-save');
    await page.waitForFunction(() => document.getElementById('view-name-error').textContent);
    out.viewBlank = await page.textContent('#view-name-error');
    out.viewMax = await page.getAttribute('#view-name', 'maxlength');
    await page.$eval('#view-name', (e) => e.removeAttribute('maxlength')); // as an older page would send it
    await page.fill('#view-name', 'v'.repeat(250));
    await page.click('#view-save');
    await page.waitForFunction(() => document.getElementById('view-name-error').textContent.startsWith('View name'));
    out.viewError = await page.textContent('#view-name-error');
    // the account page lists its equipment
    await page.goto(`${base}/console/#/r/accounts/${p.account}`);
    await page.waitForSelector('#account-assets table, #account-assets p');
    out.assets = await page.$$eval('#account-assets tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
    out.accountFields = await page.$$eval('#fields dt', (dts) => dts.map((d) => d.textContent));
    // parts a page leaves out (no computed health, no Edit button for a rep, no "create" for
    // a viewer) are left out, not printed as "null"
    await page.waitForSelector('#account-health #health-in-force');
    out.healthText = await page.textContent('#account-health');
    await page.goto(`${base}/console/#/kb/${p.article}`);
    await page.waitForSelector('#kb-body');
    out.articleText = await page.textContent('main');
    const viewer = await newPage(browser, base);
    await signIn(viewer.page, base, p.viewer, '/console/#/dashboards');
    await viewer.page.waitForSelector('#dashboard-list, main .empty');
    out.dashboardsText = await viewer.page.textContent('main');
    await viewer.context.close();
    errors.push(...viewer.errors);
    errors.bad.push(...viewer.errors.bad);
    // merging duplicates deletes them: a confirmation says so; Cancel keeps them
    await page.goto(`${base}/console/#/r/contacts/${p.keep}`);
    await page.waitForSelector('#merge-go');
    await page.click('#merge-go');
    await page.waitForSelector('#confirm-merge[open]');
    out.mergeAsk = await page.textContent('#confirm-merge');
    await page.click('#confirm-merge button:not(.danger)');
    await page.waitForSelector('#confirm-merge', { state: 'detached' });
    out.afterCancel = await page.evaluate(async (id) => (await fetch(`/api/v1/contacts/${id}`, { headers: { Authorization: `Bearer ${localStorage.getItem('fm.token')}` } })).status, p.dup);
    await page.click('#merge-go');
    await page.click('#confirm-merge-yes');
    await page.waitForSelector('#confirm-merge', { state: 'detached' });
    await page.waitForFunction(() => !document.querySelector('#merge'));
    out.afterMerge = await page.evaluate(async (id) => (await fetch(`/api/v1/contacts/${id}`, { headers: { Authorization: `Bearer ${localStorage.getItem('fm.token')}` } })).status, p.dup);
    // a bar of a negative value goes down from zero (a KPI's mean time to repair once was)
    out.barHeights = await page.evaluate(async () => {
      const { barChart } = await import('/console/chart.js');
      const svg = barChart([{ label: 'urgent', values: [-23.8, 2] }, { label: 'normal', values: [5, 1] }], ['hours', 'count']);
      return [...svg.querySelectorAll('rect')].filter((r) => r.querySelector('title')).map((r) => Number(r.getAttribute('height')));
    });
    return { ...out, errors };
  },

  // What an admin met walking the demo world: a list without bulk actions printed "null",
  // the bot settings asked for user ids, "open pipeline" charted won and lost deals, a
  // month's KPI drew nothing at 01:00 AM, bar labels were cut to look alike, ticks 4.725.
  async qaWalk(browser, base, p) {
    const { page, errors } = await newPage(browser, base, { context: { timezoneId: 'Europe/Paris' } });
    await signIn(page, base, p.user, '/console/#/users');
    await page.waitForSelector('#list table');
    const out = { usersText: await page.textContent('main') };
    // the assistant panel: an empty conversation says what to do; "read answers aloud" is
    // one line; Escape closes it and gives the focus back to its header button
    await page.click('#assistant-open');
    await page.waitForSelector('#assistant:not([hidden])');
    out.panel = await page.evaluate(() => {
      const speak = document.querySelector('#assistant input[name=speak]');
      return {
        hint: document.querySelector('#assistant .assistant-log').textContent,
        expanded: document.getElementById('assistant-open').getAttribute('aria-expanded'),
        speakLineHeight: speak.closest('label').getBoundingClientRect().height,
      };
    });
    await page.keyboard.press('Escape');
    out.panel.hiddenAfterEscape = await page.$eval('#assistant', (a) => a.hidden);
    out.panel.focusAfterEscape = await page.evaluate(() => document.activeElement.id);
    await page.goto(`${base}/console/#/assistant`);
    await page.waitForSelector('#bot-settings form');
    out.botLabels = await page.$$eval('#bot-settings label', (ls) => ls.map((l) => l.firstChild.textContent));
    out.bookingChoices = await page.$$eval('#bot-booking_user_ids option', (o) => o.map((x) => x.textContent));
    out.ownerChoice = await page.$eval('#bot-lead_owner_id', (e) => e.tagName);
    // the period is named and sized to its choices; the on/off box sits on its words' line
    out.period = await page.evaluate(() => {
      const sel = document.getElementById('assistant-days');
      const box = document.getElementById('bot-enabled');
      const words = box.closest('label');
      return {
        label: sel.labels[0] ? sel.labels[0].firstChild.textContent : null,
        widthShare: sel.getBoundingClientRect().width / document.querySelector('main').getBoundingClientRect().width,
        checkboxLine: Math.abs(box.getBoundingClientRect().top - words.getBoundingClientRect().top) < 8 && words.getBoundingClientRect().height < 40,
      };
    });
    // a refused setting is marked on its field in words, not as the API's raw message
    await page.fill('#bot-meeting_minutes', '5');
    await page.click('#bot-save');
    await page.waitForFunction(() => document.getElementById('bot-meeting_minutes-error').textContent);
    out.minutesError = await page.textContent('#bot-meeting_minutes-error');
    out.minutesInvalid = await page.getAttribute('#bot-meeting_minutes', 'aria-invalid');
    out.botFormText = await page.textContent('#bot-settings');
    // a create form: the required mark beside its field's name, the reference search as wide
    // as the other inputs, and no blank band between the title and the form
    await page.goto(`${base}/console/#/new/work_orders`);
    await page.waitForSelector('#create-account_id');
    out.form = await page.evaluate(() => {
      const box = (sel) => document.querySelector(sel).getBoundingClientRect();
      const label = (name) => box(`label[for=create-${name}]`);
      return {
        requiredLabelHeight: label('account_id').height,
        plainLabelHeight: label('description').height,
        pickerWidth: box('#create-account_id').width,
        fieldWidth: document.getElementById('create-account_id').closest('.form-field').getBoundingClientRect().width,
        titleGap: label('account_id').top - box('main h1').bottom,
      };
    });
    await shot(page, 'qa-new-work-order');
    // a deal started from an account is in the account's currency, not the column's USD
    await page.goto(`${base}/console/#/new/opportunities/account_id=${p.account}`);
    await page.waitForSelector('#create-currency');
    await page.waitForFunction(() => document.getElementById('create-currency').value !== 'USD', null, { timeout: 5000 }).catch(() => {});
    out.dealCurrency = await page.inputValue('#create-currency');
    await page.goto(`${base}/console/#/analytics`);
    await page.waitForSelector('main svg.chart, main p.muted');
    out.openStages = await page.$$eval('main svg.chart', (svgs) => (svgs[0] ? [...svgs[0].querySelectorAll('text')].map((t) => t.textContent) : []));
    out.closedStages = await page.evaluate(async () => {
      const r = await fetch('/api/v1/analytics/pipeline/stages', { headers: { Authorization: `Bearer ${localStorage.getItem('fm.token')}` } });
      return (await r.json()).items.filter((x) => x.is_won || x.is_lost).map((x) => x.stage);
    });
    out.charts = await page.evaluate(async () => {
      const { lineChart, barChart } = await import('/console/chart.js');
      const texts = (svg) => [...svg.querySelectorAll('text')].map((t) => t.textContent);
      const month = lineChart([{ t: new Date('2026-12-01T00:00:00Z'), avg: 100 }], { dates: true, unit: '%' });
      const reps = barChart(['Rep acme-rep-00', 'Rep acme-rep-01', 'Rep acme-rep-02'].map((label, i) => ({ label, values: [4.7 + i * 0.8] })), ['Utilisation %']);
      const { renderResult } = await import('/console/reports.js');
      const mixed = renderResult({ chart: 'bar', truncated: false, rows: [['Closed won', 'EUR', 41, 1341600], ['Proposal', 'EUR', 3, 142400]], columns: [
        { kind: 'group', label: 'Stage' }, { kind: 'currency', label: 'Currency' }, { kind: 'measure', label: 'Count' }, { kind: 'measure', label: 'Sum of amount', money: true }] });
      const bars = [...mixed.querySelectorAll('svg.chart rect title')].map((t) => t.textContent);
      return { monthDots: month.querySelectorAll('circle').length, monthTexts: texts(month), repTexts: texts(reps), mixedBars: bars };
    });
    // a day, month, year or time in the address that is none says so, with a way on; one
    // that is (29 February of a leap year) is shown
    out.addresses = {};
    for (const hash of p.addresses) {
      await page.evaluate((x) => { document.getElementById('view').replaceChildren(); location.hash = x; }, hash);
      await page.waitForSelector('#view h1, #bad-address, #view p.error');
      await page.waitForTimeout(300); // a view that falls back draws its period by now
      out.addresses[hash] = await page.evaluate(() => {
        const bad = document.getElementById('bad-address');
        const link = bad && bad.querySelector('a');
        return bad ? { text: bad.querySelector('p').textContent, role: bad.getAttribute('role'), href: link.getAttribute('href'), label: link.textContent } : null;
      });
    }
    await page.evaluate(() => { location.hash = '#/calendar/month/2028-02-29'; });
    await page.waitForSelector('.cal-title');
    out.leapDay = await page.textContent('.cal-title');
    return { ...out, errors };
  },

  // Saved reports as the API and the demo library save them: a bare condition as the filter
  // (the builder only knew {and: [...]} and broke), an "any of" filter the builder cannot
  // edit, and time buckets read as periods.
  async qaReports(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    const out = {};
    await signIn(page, base, p.user, '/console/#/reports');
    for (const [key, id] of Object.entries(p.reports)) {
      await page.goto('about:blank');
      await page.goto(`${base}/console/#/report/${id}`);
      await page.waitForSelector('#report-out .report-result, #report-error:not(:empty)');
      out[key] = {
        error: await page.textContent('#report-error'),
        filters: await page.$$eval('.rb-filter', (rows) => rows.map((r) => [...r.querySelectorAll('select, input')].map((x) => x.value))),
        kept: await page.$eval('.rb-filters', (x) => x.textContent),
        rows: await page.$$eval('#report-out table.report-table tbody tr', (tr) => tr.map((r) => [...r.cells].map((c) => c.textContent))),
        barLabels: await page.$$eval('#report-out svg.chart text', (t) => t.map((x) => x.textContent)),
      };
      await shot(page, `qa-report-${key}`);
    }
    return { out, errors };
  },

  // An admin gives a user created in the console a password (it had none to sign in with).
  async qaPassword(browser, base, p) {
    const { page, errors } = await newPage(browser, base);
    await signIn(page, base, p.user, `/console/#/r/users/${p.target}`);
    await page.waitForSelector('#user-password');
    await page.fill('#user-password', 'short');
    await page.click('#user-password-save');
    await page.waitForFunction(() => document.getElementById('user-password-error').textContent);
    const tooShort = await page.textContent('#user-password-error');
    await page.fill('#user-password', p.password);
    await page.click('#user-password-save');
    await page.waitForFunction(() => document.getElementById('toast').textContent.startsWith('Password set'));
    return { tooShort, cleared: await page.inputValue('#user-password'), errors };
  },
});
