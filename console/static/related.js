// @ts-check
// What a record page shows besides its fields: related lists per entity, the account's
// hierarchy, roll-up and timeline, the lead conversion wizard, the contact merge screen and
// an opportunity's stage history.
import { api, listAll, q, etagOf } from './api.js';
import { h, toast, errorBox, fmtMoney, fmtTime, fmtDate, table, scrollBox, present, fieldMessages } from './ui.js';
import { relatedList, titleOf, confirmDelete, fieldForm, forEdit } from './records.js';
import { entityMeta, labels, refLink, input, human, display, friendly } from './fields.js';
import { attachmentsPanel } from './fieldops.js';

const eq = (field, value) => ({ field, op: 'eq', value });

export async function decorate(root, actions, entity, row, m) {
  const sections = h('div', { class: 'related-grid' });
  root.append(sections);
  // every section's requests start at once; the sections are appended in their order
  /** @type {Promise<HTMLElement>[]} */
  const parts = [];
  const add = (/** @type {Promise<HTMLElement>} */ el) => { parts.push(el); };
  if (entity === 'accounts') {
    add(hierarchy(row));
    add(accountContacts(row));
    add(relatedList('Opportunities', 'opportunities', eq('account_id', row.id), { account_id: row.id }, true));
    add(relatedList('Work orders', 'work_orders', eq('account_id', row.id), { account_id: row.id }, true));
    add(assets(row));
    add(timeline(row));
    add(openAlerts(row));
    add(accountHealth(row, m));
    add(customerValue(row));
    add(Promise.resolve(attachmentsPanel({ account_id: row.id })));
  } else if (entity === 'contacts') {
    add(relatedList('Opportunities', 'opportunities', eq('contact_id', row.id), { contact_id: row.id }, false));
    add(relatedList('Activities', 'activities', eq('contact_id', row.id), { contact_id: row.id }, true));
  } else if (entity === 'leads') {
    if (row.status !== 'converted' && m.may_update) actions.prepend(h('button', { type: 'button', class: 'primary', id: 'convert-lead', onclick: () => convertWizard(row) }, 'Convert'));
    if (row.status === 'converted') {
      add(Promise.resolve(h('section', { class: 'related', id: 'converted' }, h('h2', {}, 'Converted'), h('p', {}, `on ${fmtTime(row.converted_at)} into `,
        refLink('accounts', row.converted_account_id), ', ', refLink('contacts', row.converted_contact_id),
        row.converted_opportunity_id ? [', ', refLink('opportunities', row.converted_opportunity_id)] : null))));
    }
    add(leadScore(row));
    add(relatedList('Activities', 'activities', eq('lead_id', row.id), { lead_id: row.id }, true));
  } else if (entity === 'opportunities') {
    add(winChance(row));
    add(stageHistory(row));
    add(relatedList('Activities', 'activities', eq('opportunity_id', row.id), { opportunity_id: row.id, account_id: row.account_id }, true));
  } else if (entity === 'work_orders') {
    add(relatedList('Activities', 'activities', eq('work_order_id', row.id), { work_order_id: row.id, account_id: row.account_id }, true));
    add(Promise.resolve(attachmentsPanel({ work_order_id: row.id })));
  } else if (entity === 'users') {
    // who may create users (admins) also sets their password: a new user has none to sign in with
    if (m.may_create) add(Promise.resolve(passwordForm(row)));
    add(relatedList('Accounts owned', 'accounts', eq('owner_id', row.id), {}, false));
  } else if (entity === 'territories') {
    add(relatedList('Accounts', 'accounts', eq('territory_id', row.id), {}, false));
  }
  for (const el of await Promise.all(parts)) sections.append(el);
  if (entity === 'contacts' && m.may_update) await duplicates(actions, sections, row);
}

// ---------------------------------------------------------------- insights' scores and reasons

const pct = (x) => `${Math.round(x)} %`;

/** The model's top reasons: what pushed the score up or down, in words. */
function reasonList(reasons) {
  const top = [...reasons].sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution)).slice(0, 5);
  return h('ul', { class: 'reasons' }, top.map((r) => h('li', { dataset: { contribution: r.contribution } },
    h('span', { class: r.contribution >= 0 ? 'up' : 'down', 'aria-label': r.contribution >= 0 ? 'raises' : 'lowers' }, r.contribution >= 0 ? '▲ ' : '▼ '),
    `${human(r.feature)}: ${String(r.value).replace(/_/g, ' ')}`)));
}

/** A lead's score (0-100), its conversion probability and the reasons (insights). */
async function leadScore(lead) {
  const box = h('section', { class: 'related', id: 'lead-score' }, h('h2', {}, 'Lead score'));
  try {
    const r = await api(`/api/v1/insights/leads/${lead.id}/score`);
    if (!r.score) { box.append(h('p', { class: 'empty' }, 'Not scored yet: scores appear once a lead model has been trained on decided leads.')); return box; }
    const s = r.score;
    box.dataset.score = String(s.score);
    box.append(h('p', {}, h('strong', { class: 'score' }, `${s.score} / 100`),
      s.probability != null ? ` · ${pct(s.probability * 100)} likely to convert` : null,
      h('span', { class: 'muted' }, ` · model ${s.model_version}, ${fmtTime(s.computed_at)}`)), reasonList(s.reasons));
  } catch (e) { box.append(errorBox(e)); }
  return box;
}

/** A deal's win probability by the model beside its stage's, stalled or not (insights). */
async function winChance(opp) {
  const box = h('section', { class: 'related', id: 'win-probability' }, h('h2', {}, 'Win probability'));
  try {
    const r = await api(`/api/v1/insights/opportunities/${opp.id}/win`);
    const m = r.model;
    const modelPct = m ? (m.probability != null ? m.probability * 100 : m.score) : null;
    if (modelPct != null) box.dataset.probability = String(Math.round(modelPct));
    box.append(h('p', {},
      modelPct != null ? [h('strong', { class: 'score' }, pct(modelPct)), ' by the model · '] : 'Not scored by a model yet · ',
      `${pct(r.stage_probability)} by its stage · ${Math.round(r.days_in_stage)} days in this stage`,
      r.stalled ? h('strong', { class: 'stalled' }, ` · stalled (longer than 90 % of past stays: ${Math.round(r.stage_p90_days)} days)`) : null),
    ...(m ? [h('p', { class: 'muted' }, `model ${m.model_version}, ${fmtTime(m.computed_at)}`), reasonList(m.reasons)] : []));
  } catch (e) { box.append(errorBox(e)); }
  return box;
}

/** An account's computed health with its components, beside the typed manual override
 * (accounts.health_score, set and cleared here through the account's PATCH with its ETag),
 * and which of the two is in force. */
async function accountHealth(a, m) {
  const box = h('section', { class: 'related', id: 'account-health' }, h('h2', {}, 'Account health'));
  const field = m.fields.find((f) => f.name === 'health_score');
  const body = h('div');
  const err = h('span', { class: 'field-error', id: 'health-override-error', role: 'alert' });
  box.append(body);
  let computed = null;
  const draw = () => {
    const override = a.health_score;
    const inForce = override != null ? 'override' : computed ? 'computed' : 'none';
    box.dataset.inForce = inForce;
    body.replaceChildren(...present(
      h('p', { id: 'health-in-force' }, inForce === 'override' ? [h('strong', { class: 'score' }, `${override} / 100`), ' in force: the manual override']
        : inForce === 'computed' ? [h('strong', { class: 'score' }, `${computed.score} / 100`), ' in force: computed']
          : 'No health yet: it is computed by the insights jobs, or typed below.'),
      computed ? h('p', { id: 'health-computed', dataset: { score: computed.score } }, `Computed: ${computed.score} / 100`,
        h('span', { class: 'muted' }, ` · from a base of 80 · rules version ${computed.model_version}, ${fmtTime(computed.computed_at)}`)) : h('p', { class: 'muted', id: 'health-computed' }, 'Computed: not yet.'),
      computed && computed.reasons.length ? h('ul', { class: 'reasons' }, computed.reasons.map((r) => h('li', { dataset: { contribution: r.contribution } },
        h('span', { class: r.contribution >= 0 ? 'up' : 'down', 'aria-label': r.contribution >= 0 ? 'raises' : 'lowers' }, r.contribution >= 0 ? '▲ ' : '▼ '),
        `${human(r.feature)}: ${String(r.value).replace(/_/g, ' ')} (${r.contribution >= 0 ? '+' : '−'}${Math.abs(Math.round(r.contribution))} points)`))) : null,
      h('p', { id: 'health-override' }, override != null ? `Manual override: ${override} / 100` : 'Manual override: none')));
    if (m.may_update && field && field.write) {
      const inp = /** @type {HTMLInputElement} */ (h('input', { type: 'number', id: 'health-override-value', min: 0, max: 100, step: 1, value: override ?? '', 'aria-describedby': 'health-override-error' }));
      const save = h('button', { type: 'submit', class: 'primary', id: 'health-override-save' }, override != null ? 'Change override' : 'Set override');
      const clear = override != null ? h('button', { type: 'button', id: 'health-override-clear', onclick: () => send(null) }, 'Clear override') : null;
      const form = h('form', { class: 'inline-edit', novalidate: true }, h('label', { for: 'health-override-value' }, 'Override (0–100)'), inp, save, clear, err);
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        const v = inp.value.trim();
        if (!/^\d{1,3}$/.test(v) || Number(v) > 100) { err.textContent = 'Type a whole number from 0 to 100, or clear the override.'; inp.setAttribute('aria-invalid', 'true'); inp.focus(); return; }
        send(Number(v));
      });
      body.append(form);
    }
  };
  async function send(value) {
    err.textContent = '';
    try {
      const fresh = await api(`/api/v1/accounts/${a.id}`, { method: 'PATCH', body: { health_score: value }, headers: { 'If-Match': etagOf(a) } });
      Object.assign(a, fresh);
      const dd = document.querySelector('#fields dd[data-field=health_score] .value');
      if (dd && field) dd.replaceChildren(display(field, a));
      toast(value === null ? 'Override cleared: the computed health is in force' : 'Override set');
      draw();
    } catch (e) {
      err.textContent = e.status === 412 ? 'Changed by someone else since you opened the page: reload it first.' : e.message;
    }
  }
  try {
    computed = (await api(`/api/v1/insights/accounts/${a.id}/health`)).health;
  } catch (e) { box.append(errorBox(e)); }
  draw();
  return box;
}

/** An account's churn risk with its reasons, lifetime value and segment (insights). */
async function customerValue(a) {
  const box = h('section', { class: 'related', id: 'customer-value' }, h('h2', {}, 'Churn risk and value'));
  try {
    const [c, v] = await Promise.all([
      api(`/api/v1/insights/accounts/${a.id}/churn`), api(`/api/v1/insights/accounts/${a.id}/value`),
    ]);
    const s = c.churn;
    if (!s && !v.value) {
      box.append(h('p', { class: 'empty' }, 'No churn score: the account has no won deal yet, or no churn model has been trained.'));
      return box;
    }
    if (s) {
      box.dataset.churn = String(s.score);
      box.append(h('p', {}, h('strong', { class: 'score' }, s.probability != null ? pct(s.probability * 100) : `${s.score} / 100`),
        ' risk of lapsing', h('span', { class: 'muted' }, ` · ${c.outcome} · model ${s.model_version}, ${fmtTime(s.computed_at)}`)),
      reasonList(s.reasons));
    }
    if (v.value) {
      const x = v.value;
      box.append(h('dl', { class: 'figures' },
        h('dt', {}, 'Lifetime value'), h('dd', { id: 'clv' }, fmtMoney(x.clv, a.currency)),
        h('dt', {}, 'Won in the last year'), h('dd', {}, fmtMoney(x.yearly_revenue, a.currency)),
        h('dt', {}, 'Yearly retention'), h('dd', {}, pct(x.retention * 100)),
        h('dt', {}, 'Segment'), h('dd', {}, h('a', { href: `#/segments/${encodeURIComponent(x.segment)}` }, x.segment),
          x.atypical ? h('span', { class: 'muted' }, ' · unlike any group (atypical)') : null)));
    }
  } catch (e) { box.append(errorBox(e)); }
  return box;
}

async function hierarchy(a) {
  const box = h('section', { class: 'related', id: 'hierarchy' }, h('h2', {}, 'Hierarchy'));
  try {
    const chain = [];
    let cur = a;
    while (cur.parent_id && chain.length < 10) {
      try { cur = await api(`/api/v1/accounts/${cur.parent_id}`); chain.unshift(cur); } catch { chain.unshift({ id: null, name: 'a parent not visible to you' }); break; }
    }
    const kids = await listAll('/api/v1/accounts', { filter: eq('parent_id', a.id) }, 200);
    box.append(h('ul', {}, chain.map((p) => h('li', {}, p.id ? h('a', { href: `#/r/accounts/${p.id}` }, p.name) : h('span', { class: 'muted' }, p.name))),
      h('li', {}, h('strong', {}, a.name), kids.length ? h('ul', {}, kids.map((k) => h('li', {}, h('a', { href: `#/r/accounts/${k.id}` }, k.name)))) : null)));
    const roll = await api(`/api/v1/accounts/${a.id}/rollup`).catch(() => null);
    if (roll) {
      // amounts are never added across currencies: one figure per currency, joined
      const money = (list) => (list && list.length ? list.map((x) => fmtMoney(x.amount, x.currency)).join(' + ') : 'none');
      box.append(h('dl', { class: 'figures', id: 'rollup' },
        h('dt', {}, 'Accounts in the group'), h('dd', {}, roll.accounts),
        h('dt', {}, 'Group annual revenue'), h('dd', {}, money(roll.annual_revenue_by_currency)),
        h('dt', {}, 'Open opportunities'), h('dd', {}, roll.open_opportunities ? `${roll.open_opportunities} · ${money(roll.open_amount_by_currency)}` : '0')));
    }
  } catch (e) { box.append(errorBox(e)); }
  return box;
}

async function accountContacts(a) {
  const box = h('section', { class: 'related', dataset: { related: 'contacts' } }, h('h2', {}, 'Contacts'));
  try {
    const r = await api(`/api/v1/accounts/${a.id}/contacts`);
    box.append(r.items.length ? h('ul', {}, r.items.map((c) => h('li', {}, h('a', { href: `#/r/contacts/${c.contact_id}` },
      [c.first_name, c.last_name].filter(Boolean).join(' ') || c.company_name || c.email || 'Unnamed contact'),
    ` · ${c.role.replace('_', ' ')}`, c.email ? ` · ${c.email}` : '', c.phone ? ` · ${c.phone}` : '')))
      : h('p', { class: 'muted' }, 'No contacts linked to this account.'));
  } catch (e) { box.append(errorBox(e)); }
  return box;
}

const ICON = { call: '☎', email: '✉', meeting: '👥', task: '✔', note: '✎' };

async function timeline(a) {
  const box = h('section', { class: 'related', id: 'timeline' }, h('h2', {}, 'Timeline'));
  try {
    const tl = await api(`/api/v1/accounts/${a.id}/timeline${q({ limit: 50 })}`);
    const who = await labels('users', tl.items.map((t) => t.owner_id));
    box.append(tl.items.length ? h('ol', { class: 'timeline' }, tl.items.map((t) => h('li', { dataset: { type: t.type } },
      h('span', { class: 'ticon', 'aria-hidden': 'true' }, ICON[t.type] || '•'),
      h('div', {}, h('a', { href: `#/r/activities/${t.id}` }, t.subject), h('div', { class: 'muted' },
        `${t.type} · ${t.status} · ${fmtTime(t.occurred_at)}${who.get(t.owner_id) ? ` · ${who.get(t.owner_id)}` : ''}`),
      t.body ? h('p', { class: 'tbody' }, t.body.slice(0, 300)) : null))))
      : h('p', { class: 'muted' }, 'No activities yet: log a call or a visit from "New activity".'));
    box.append(h('a', { class: 'button', href: `#/new/activities/account_id=${a.id}` }, 'New activity'));
  } catch (e) { box.append(errorBox(e)); }
  return box;
}

/** The account's installed equipment (GET /api/v1/assets): model, serial, contract, device;
 * "Add equipment" opens the asset form with this account filled in; each row's Edit opens
 * the same fields under the list (PATCH with the asset's ETag, the API's errors on their
 * field, a change made meanwhile explained with reload or overwrite), Delete asks first. */
async function assets(a) {
  const m = await entityMeta('assets');
  const box = h('section', { class: 'related', id: 'account-assets' }, h('h2', {}, 'Equipment'));
  if (m.may_create) box.append(h('a', { class: 'button', id: 'add-equipment', href: `#/new/assets/account_id=${a.id}` }, 'Add equipment'));
  const body = h('div', {});
  const editor = h('div', { id: 'asset-editor' });
  box.append(body, editor);
  const edit = (x) => {
    // the account stays: an asset moves to another account by deleting and adding it
    const fields = m.fields.filter((f) => f.write && f.name !== 'account_id').map((f) => forEdit('assets', f));
    const ff = fieldForm(m, fields, x, 'edit-asset');
    const save = h('button', { type: 'submit', class: 'primary', id: 'edit-asset-save' }, 'Save');
    const title = `Edit ${titleOf('assets', x)}`;
    ff.form.setAttribute('aria-label', title);
    ff.form.append(h('div', { class: 'toolbar' }, save, h('button', { type: 'button', onclick: () => editor.replaceChildren() }, 'Cancel')));
    editor.replaceChildren(h('h3', {}, title), ff.form);
    const send = async (ifMatch) => {
      await api(`/api/v1/assets/${x.id}`, { method: 'PATCH', body: ff.values(), headers: { 'If-Match': ifMatch } });
      toast('Asset saved');
      editor.replaceChildren();
      await load();
    };
    ff.form.addEventListener('submit', async (e) => {
      e.preventDefault();
      ff.clear();
      save.disabled = true;
      try { await send(etagOf(x)); } catch (err) {
        if (err.status === 412) {
          // changed by someone else since the list was read: theirs, or ours over it
          ff.showError({ message: 'Changed by someone else since you opened it: reload, or overwrite with your values.' });
          ff.form.querySelector('.error').append(' ',
            h('button', { type: 'button', id: 'edit-asset-reload', onclick: async () => { editor.replaceChildren(); await load(); const fresh = rows.find((y) => y.id === x.id); if (fresh) edit(fresh); } }, 'Reload'), ' ',
            h('button', { type: 'button', id: 'edit-asset-overwrite', onclick: async () => { try { await send('*'); } catch (x2) { ff.showError(x2); } } }, 'Overwrite'));
        } else ff.showError(err);
      } finally { save.disabled = false; }
    });
    /** @type {HTMLElement | null} */ (ff.form.querySelector('input, select'))?.focus();
  };
  const actions = (x) => h('span', { class: 'toolbar' },
    m.may_update ? h('button', { type: 'button', class: 'edit-asset', 'aria-label': `Edit ${titleOf('assets', x)}`, onclick: () => edit(x) }, 'Edit') : null,
    m.may_delete ? h('button', { type: 'button', class: 'danger delete-asset', 'aria-label': `Delete ${titleOf('assets', x)}`, onclick: () => confirmDelete('assets', m, x, { onDeleted: load }) }, 'Delete') : null);
  let rows = [];
  async function load() {
    try {
      const r = await api(`/api/v1/assets${q({ account_id: a.id })}`);
      rows = r.items;
      const cols = [
        { label: 'Model', render: (x) => x.equipment_model },
        { label: 'Serial', render: (x) => x.serial || '—' },
        { label: 'Device', render: (x) => (x.device_id ? h('a', { href: `#/device/${encodeURIComponent(x.device_id)}` }, x.device_id) : '—') },
        { label: 'Installed', render: (x) => (x.installed_on ? fmtDate(`${x.installed_on}T12:00:00`) : '—') },
        { label: 'Contract', render: (x) => `${x.contract_tier} · SLA ${x.sla_hours} h` },
      ];
      if (m.may_update || m.may_delete) cols.push({ label: 'Actions', render: actions });
      body.replaceChildren(r.items.length ? scrollBox('Equipment', {}, table(cols, r.items)) : h('p', { class: 'muted' }, 'No equipment recorded at this account.'));
    } catch (e) { body.replaceChildren(errorBox(e)); }
  }
  await load();
  return box;
}

async function openAlerts(a) {
  const box = h('section', { class: 'related', id: 'account-alerts' }, h('h2', {}, 'Open alerts'));
  try {
    const pos = await api(`/console/api/positions${q({ account_id: a.id })}`);
    const devices = pos.devices.filter((d) => d.account_id === a.id);
    const alerts = devices.filter((d) => d.alert_state);
    box.append(devices.length ? h('ul', {}, devices.map((d) => h('li', {}, h('a', { href: `#/device/${encodeURIComponent(d.device_id)}` }, d.name || d.equipment_model || 'device'),
      d.alert_state ? h('strong', { class: 'error' }, ` · alert ${d.alert_state}`) : ' · no open alert')))
      : h('p', { class: 'muted' }, 'No connected equipment at this account.'));
    if (!alerts.length && devices.length) box.append(h('p', { class: 'muted' }, 'No open alerts.'));
  } catch (e) { box.append(errorBox(e)); }
  return box;
}

async function stageHistory(o) {
  const box = h('section', { class: 'related', id: 'stage-history' }, h('h2', {}, 'Stage history'));
  try {
    const r = await api(`/api/v1/opportunities/${o.id}/stage_history`);
    const ids = r.items.flatMap((x) => [x.from_stage_id, x.to_stage_id]);
    const names = await labels('pipeline_stages', ids);
    const who = await labels('users', r.items.map((x) => x.changed_by));
    box.append(h('ol', {}, r.items.map((x) => h('li', {}, `${x.from_stage_id ? `${names.get(x.from_stage_id) || 'stage'} → ` : 'created in '}${names.get(x.to_stage_id) || 'stage'}`,
      h('span', { class: 'muted' }, ` · ${fmtTime(x.changed_at)}${who.get(x.changed_by) ? ` · ${who.get(x.changed_by)}` : ''}${x.amount !== null ? ` · ${fmtMoney(x.amount, o.currency)}` : ''}`)))));
  } catch (e) { box.append(errorBox(e)); }
  return box;
}

// ---------------------------------------------------------------------------- lead conversion

function convertWizard(lead) {
  const dlg = /** @type {HTMLDialogElement} */ (h('dialog', { id: 'convert-dialog', 'aria-labelledby': 'convert-title' }));
  const err = h('p', { class: 'error', role: 'alert', id: 'convert-error' });
  const mode = h('fieldset', {}, h('legend', {}, 'Account'),
    h('label', { class: 'inline' }, h('input', { type: 'radio', name: 'mode', value: 'new', checked: true }), ` New account "${lead.company || titleOf('leads', lead)}"`),
    h('label', { class: 'inline' }, h('input', { type: 'radio', name: 'mode', value: 'existing' }), ' An existing account'));
  const accField = { name: 'account_id', kind: 'int', ref: 'accounts', enum: [], nullable: true, required: false, write: true, minimum: null, maximum: null, max_len: null };
  const acc = input(accField, null, 'convert-account');
  const accWrap = h('div', { hidden: true }, h('label', { for: 'convert-account' }, 'Account'), acc.el);
  const mkOpp = h('input', { type: 'checkbox', id: 'convert-opp', checked: true });
  const oppName = h('input', { id: 'convert-opp-name', value: `${lead.company || titleOf('leads', lead)} deal` });
  const oppAmount = h('input', { id: 'convert-opp-amount', type: 'number', min: 0, step: 'any', value: lead.estimated_amount ?? '' });
  const go = h('button', { type: 'submit', class: 'primary', id: 'convert-go' }, 'Convert');
  const form = /** @type {HTMLFormElement} */ (h('form', {}));
  // a refused name or amount is said beside it (a negative amount was the browser's bubble)
  const msgs = fieldMessages(form);
  const accInput = /** @type {HTMLElement} */ (acc.el.querySelector('input') || acc.el);
  form.append(h('h2', { id: 'convert-title' }, `Convert ${titleOf('leads', lead)}`),
    h('p', { class: 'muted' }, 'Creates a contact from the lead, in a new or an existing account, and optionally an opportunity.'),
    mode, accWrap,
    h('label', { class: 'inline' }, mkOpp, ' Create an opportunity'),
    h('label', { for: 'convert-opp-name' }, 'Opportunity name'), oppName, msgs.slot(oppName),
    h('label', { for: 'convert-opp-amount' }, `Amount (${lead.currency})`), oppAmount, msgs.slot(oppAmount),
    err, h('div', { class: 'toolbar' }, go, h('button', { type: 'button', onclick: () => dlg.close() }, 'Cancel')));
  accWrap.append(msgs.slot(accInput));
  mode.addEventListener('change', () => { accWrap.hidden = /** @type {HTMLInputElement} */ (form.querySelector('input[name=mode]:checked')).value !== 'existing'; });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    msgs.clear();
    const existing = !accWrap.hidden;
    /** @type {any} */
    const body = { create_opportunity: /** @type {HTMLInputElement} */ (mkOpp).checked };
    const amountInput = /** @type {HTMLInputElement} */ (oppAmount);
    try {
      if (existing) { body.account_id = acc.get(); if (!body.account_id) throw Object.assign(new Error('Pick the account to convert into.'), { field: 'account_id' }); }
      if (body.create_opportunity) {
        body.opportunity = { name: /** @type {HTMLInputElement} */ (oppName).value };
        if (amountInput.validity.badInput) throw Object.assign(new Error('must be a number'), { field: 'opportunity.amount' });
        if (amountInput.value !== '') body.opportunity.amount = Number(amountInput.value);
      }
    } catch (ex) { showErr(ex); return; }
    go.disabled = true; go.textContent = 'Converting…';
    try {
      const r = await api(`/api/v1/leads/${lead.id}/convert`, { method: 'POST', body, headers: { 'Idempotency-Key': crypto.randomUUID() } });
      dlg.close();
      toast('Lead converted');
      location.hash = r.opportunity ? `#/r/opportunities/${r.opportunity.id}` : `#/r/accounts/${r.account.id}`;
    } catch (ex) { showErr(ex); go.disabled = false; go.textContent = 'Convert'; }
  });
  /** A refused part beside its field; anything else under the form. @param {any} ex */
  function showErr(ex) {
    const el = { account_id: accInput, 'opportunity.name': oppName, 'opportunity.amount': oppAmount }[ex.field];
    if (el) msgs.mark(el, friendly(ex.message, ex.field)); else err.textContent = ex.message;
  }
  dlg.append(form);
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
}

// ---------------------------------------------------------------------------- password

/** An admin sets a user's password (PUT /api/v1/users/{id}/password; their sessions end). */
function passwordForm(user) {
  const pw = /** @type {HTMLInputElement} */ (h('input', { type: 'password', id: 'user-password', name: 'password', autocomplete: 'new-password', minlength: 8, maxlength: 1024, 'aria-describedby': 'user-password-error' }));
  const err = h('span', { class: 'field-error', id: 'user-password-error', role: 'alert' });
  const go = h('button', { type: 'submit', id: 'user-password-save' }, 'Set password');
  const form = h('form', { class: 'record-form', novalidate: true },
    h('div', { class: 'form-field' }, h('label', { for: 'user-password' }, 'New password'), pw, err), go);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = ''; pw.removeAttribute('aria-invalid');
    go.disabled = true;
    try {
      await api(`/api/v1/users/${user.id}/password`, { method: 'PUT', body: { password: pw.value } });
      pw.value = '';
      toast(`Password set for ${user.name || user.email}; their sessions were ended`);
    } catch (ex) {
      err.textContent = ex.message.replace(/^password:? /, '');
      pw.setAttribute('aria-invalid', 'true'); pw.focus();
    } finally { go.disabled = false; }
  });
  return h('section', { class: 'related', id: 'user-password-box' }, h('h2', {}, 'Password'), form);
}

// ---------------------------------------------------------------------------- merge

const COMPARE = ['first_name', 'last_name', 'company_name', 'title', 'email', 'phone', 'address', 'owner_id'];

async function duplicates(actions, sections, contact) {
  let groups;
  try { groups = (await api('/api/v1/contacts/duplicates')).items; } catch { return; }
  const ids = [...new Set(groups.filter((g) => g.contact_ids.includes(contact.id)).flatMap((g) => g.contact_ids))].filter((i) => i !== contact.id);
  if (!ids.length) return;
  const others = (await Promise.all(ids.map((i) => api(`/api/v1/contacts/${i}`).catch(() => null)))).filter(Boolean);
  if (!others.length) return;
  const m = await entityMeta('contacts');
  const box = h('section', { class: 'related merge', id: 'merge' }, h('h2', {}, `Possible duplicates (${others.length})`),
    h('p', { class: 'muted' }, 'Merging keeps this contact: its empty fields are filled from the ones ticked, their activities, roles and opportunities move here, and they are deleted.'));
  const checks = others.map((o) => h('input', { type: 'checkbox', checked: true, value: o.id, 'aria-label': `Merge ${titleOf('contacts', o)}` }));
  const fieldOf = (n) => m.fields.find((f) => f.name === n);
  const { display } = await import('./fields.js');
  box.append(scrollBox('Duplicates side by side', {}, h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'This contact (kept)'), others.map((o, i) => h('th', { scope: 'col' }, checks[i], ` ${titleOf('contacts', o)}`)))),
    h('tbody', {}, COMPARE.map((n) => h('tr', {}, h('th', { scope: 'row' }, human(n)), h('td', {}, display(fieldOf(n), contact)), others.map((o) => h('td', {}, display(fieldOf(n), o)))))))));
  const err = h('p', { class: 'error', role: 'alert' });
  const btn = h('button', { type: 'button', class: 'primary', id: 'merge-go' }, 'Merge into this contact');
  btn.addEventListener('click', async () => {
    const mergeIds = checks.filter((c) => /** @type {HTMLInputElement} */ (c).checked).map((c) => Number(/** @type {HTMLInputElement} */ (c).value));
    err.textContent = '';
    if (!mergeIds.length) { err.textContent = 'Tick at least one duplicate.'; return; }
    // merging deletes the ticked contacts: say so and ask first, as Delete does
    const names = others.filter((o) => mergeIds.includes(o.id)).map((o) => titleOf('contacts', o));
    const dlg = /** @type {HTMLDialogElement} */ (h('dialog', { id: 'confirm-merge', 'aria-labelledby': 'confirm-merge-title' }));
    const yes = h('button', { type: 'button', class: 'danger', id: 'confirm-merge-yes' }, 'Merge');
    const derr = h('p', { class: 'error', role: 'alert' });
    dlg.append(h('h2', { id: 'confirm-merge-title' }, `Merge ${names.length === 1 ? `"${names[0]}"` : `${names.length} contacts`} into "${titleOf('contacts', contact)}"?`),
      h('p', {}, `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} deleted once merged; this cannot be undone.`), derr,
      h('div', { class: 'toolbar' }, yes, h('button', { type: 'button', onclick: () => dlg.close() }, 'Cancel')));
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try {
        await api(`/api/v1/contacts/${contact.id}/merge`, { method: 'POST', body: { merge_ids: mergeIds } });
        dlg.close();
        toast(`${mergeIds.length} merged`);
        window.dispatchEvent(new HashChangeEvent('hashchange'));
      } catch (e) { derr.textContent = e.message; yes.disabled = false; }
    });
    dlg.addEventListener('close', () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  });
  box.append(err, btn);
  actions.append(h('a', { class: 'button', href: '#merge' }, `Duplicates (${others.length})`));
  sections.prepend(box);
}
