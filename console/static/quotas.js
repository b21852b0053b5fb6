// @ts-check
// Sales quotas: per rep, period and currency, with their attainment (the quota_attainment
// KPI: won in the quota's period over the quota, and pipeline coverage). Admins set anyone's
// quota, managers their team's (GET /api/v1/quotas/assignable says whose); reps and viewers
// only read (a rep sees their own). Team totals add up the reps shown, per period and currency.
import { api, q } from './api.js';
import { h, toast, errorBox, fmtMoney, fmtDate, scrollBox, readYear, badAddress } from './ui.js';

const PERIODS = [['month', 'Month'], ['quarter', 'Quarter'], ['year', 'Year']];
const MONTHS = { month: 1, quarter: 3, year: 12 };

/** YYYY-MM-DD of a local date (no time zone shift). */
const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;

/** The [start, end) dates of a period of `kind` starting in the month `ym` (YYYY-MM). */
export function periodOf(kind, ym) {
  const [y, m] = ym.split('-').map(Number);
  const first = kind === 'quarter' ? m - ((m - 1) % 3) : kind === 'year' ? 1 : m;
  const start = new Date(y, first - 1, 1);
  const end = new Date(y, first - 1 + MONTHS[kind], 1);
  return [iso(start), iso(end)];
}

const periodLabel = (start, end) => {
  const s = new Date(`${start}T00:00:00`);
  const months = Math.round((Date.parse(`${end}T00:00:00`) - s.getTime()) / (30.44 * 86400000));
  if (s.getDate() === 1 && months === 12 && s.getMonth() === 0) return String(s.getFullYear());
  if (s.getDate() === 1 && months === 3 && s.getMonth() % 3 === 0) return `Q${s.getMonth() / 3 + 1} ${s.getFullYear()}`;
  if (s.getDate() === 1 && months === 1) return s.toLocaleDateString([], { month: 'long', year: 'numeric' });
  const last = new Date(Date.parse(`${end}T00:00:00`) - 86400000);
  return `${fmtDate(s)} – ${fmtDate(last)}`;
};

export async function quotasView(root, [yearArg] = []) {
  // the years around this one, and the one a link names (#/quotas/2026): an older year
  // stays reachable once it has left the list
  const thisYear = new Date().getFullYear();
  const named = yearArg ? readYear(yearArg) : null;
  if (typeof named === 'string') {
    root.append(h('h1', {}, 'Sales quotas'), badAddress('year', yearArg, named, '#/quotas', 'This year'));
    return null;
  }
  const year = named || thisYear;
  const years = [...new Set([year, thisYear - 3, thisYear - 2, thisYear - 1, thisYear, thisYear + 1])].sort((a, b) => a - b);
  const yearSel = /** @type {HTMLSelectElement} */ (h('select', { id: 'quota-year' },
    years.map((y) => h('option', { value: y, selected: y === year }, y))));
  const out = scrollBox('Quotas', { id: 'quotas' });
  root.append(h('div', { class: 'toolbar' }, h('h1', {}, 'Sales quotas'), h('label', { for: 'quota-year' }, 'Year', yearSel)));
  let reps;
  try { reps = (await api('/api/v1/quotas/assignable')).items; } catch (e) { root.append(errorBox(e)); return null; }
  const form = reps.length ? quotaForm(reps, () => load()) : null;
  if (form) root.append(form.el);
  else root.append(h('p', { class: 'muted' }, 'Quotas are set by your manager; here is how you stand against yours.'));
  root.append(out);

  async function load() {
    out.dataset.ready = 'no';
    const since = `${yearSel.value}-01-01T00:00:00Z`;
    const until = `${Number(yearSel.value) + 1}-01-01T00:00:00Z`;
    let quotas;
    let kpi;
    try {
      [quotas, kpi] = await Promise.all([
        api('/api/v1/quotas').then((r) => r.items),
        api(`/api/v1/kpis/quota_attainment${q({ since, until })}`),
      ]);
    } catch (e) { out.replaceChildren(errorBox(e)); out.dataset.ready = 'yes'; return; }
    const inYear = quotas.filter((x) => x.period_start < until.slice(0, 10) && x.period_end > since.slice(0, 10));
    // the KPI's rows: rep, currency, period start, quota, won, attainment %, open, coverage
    const att = new Map(kpi.rows.map((r) => [`${r[0]}|${r[2]}|${r[1]}`, r]));
    if (!inYear.length) {
      out.replaceChildren(h('p', { class: 'empty' }, form
        ? `No quota set for ${yearSel.value}. Choose a rep, a period and an amount above.`
        : `No quota set for you in ${yearSel.value}.`));
      out.dataset.ready = 'yes';
      return;
    }
    const mayEdit = new Set(reps.map((r) => r.id));
    const bar = (pct) => h('meter', { min: 0, max: 100, low: 50, high: 90, optimum: 100, value: Math.min(pct, 100), 'aria-hidden': 'true' });
    const body = inYear.map((x) => {
      const r = att.get(`${x.user_name}|${x.period_start}|${x.currency}`);
      const won = r ? Number(r[4]) : 0;
      const pct = r ? Number(r[5]) : 0;
      const cover = r && r[7] !== null ? Number(r[7]).toFixed(2) : '—';
      const actions = mayEdit.has(x.user_id) ? h('td', {},
        h('button', { type: 'button', class: 'edit-quota', 'aria-label': `Edit ${x.user_name}'s quota for ${periodLabel(x.period_start, x.period_end)}`, onclick: () => form && form.fill(x) }, 'Edit'), ' ',
        h('button', { type: 'button', class: 'delete-quota', 'aria-label': `Remove ${x.user_name}'s quota for ${periodLabel(x.period_start, x.period_end)}`, onclick: () => remove(x) }, 'Remove'))
        : (form ? h('td', {}) : null);
      return h('tr', { dataset: { quota: x.id, user: x.user_id } },
        h('td', {}, x.user_name), h('td', {}, periodLabel(x.period_start, x.period_end)),
        h('td', { class: 'num' }, fmtMoney(x.amount, x.currency)), h('td', { class: 'num' }, fmtMoney(won, x.currency)),
        h('td', { class: 'num attainment' }, bar(pct), ` ${pct.toFixed(1)} %`),
        h('td', { class: 'num' }, r ? fmtMoney(r[6], x.currency) : fmtMoney(0, x.currency)), h('td', { class: 'num' }, cover), actions);
    });
    // team totals: the reps shown, per period and currency (never added across currencies)
    const totals = new Map();
    for (const x of inYear) {
      const k = `${x.period_start}|${x.period_end}|${x.currency}`;
      const r = att.get(`${x.user_name}|${x.period_start}|${x.currency}`);
      const t = totals.get(k) || { ...x, amount: 0, won: 0, n: 0 };
      t.amount += x.amount; t.won += r ? Number(r[4]) : 0; t.n += 1;
      totals.set(k, t);
    }
    const foot = [...totals.values()].filter((t) => t.n > 1).map((t) => h('tr', { class: 'total' },
      h('th', { scope: 'row' }, `Team (${t.n} reps)`), h('td', {}, periodLabel(t.period_start, t.period_end)),
      h('td', { class: 'num' }, fmtMoney(t.amount, t.currency)), h('td', { class: 'num' }, fmtMoney(t.won, t.currency)),
      h('td', { class: 'num' }, `${(100 * t.won / t.amount).toFixed(1)} %`), h('td', {}), h('td', {}), form ? h('td', {}) : null));
    out.replaceChildren(h('table', { class: 'grid report-table', id: 'quota-table' },
      h('caption', { class: 'muted' }, 'Won: deals closed won in the quota\'s period and currency. Coverage: open deals due in the rest of the period over what is left of the quota.'),
      h('thead', {}, h('tr', {}, ['Rep', 'Period', 'Quota', 'Won', 'Attainment', 'Open pipeline', 'Coverage', ...(form ? ['Actions'] : [])].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, body), foot.length ? h('tfoot', {}, foot) : null));
    out.dataset.ready = 'yes';
  }

  async function remove(x) {
    const dlg = /** @type {HTMLDialogElement} */ (h('dialog', { id: 'confirm-quota', 'aria-labelledby': 'confirm-quota-title' }));
    const err = h('p', { class: 'error', role: 'alert' });
    const yes = h('button', { type: 'button', class: 'danger', id: 'confirm-quota-yes' }, 'Remove');
    dlg.append(h('h2', { id: 'confirm-quota-title' }, `Remove ${x.user_name}'s quota for ${periodLabel(x.period_start, x.period_end)}?`), err,
      h('div', { class: 'toolbar' }, yes, h('button', { type: 'button', onclick: () => dlg.close() }, 'Keep it')));
    dlg.addEventListener('close', () => dlg.remove());
    yes.addEventListener('click', async () => {
      try {
        await api(`/api/v1/quotas/${x.id}`, { method: 'DELETE' });
        dlg.close();
        toast('Quota removed');
        await load();
      } catch (e) { err.textContent = e.message; }
    });
    document.body.append(dlg);
    dlg.showModal();
  }

  yearSel.addEventListener('change', () => load());
  await load();
  return null;
}

/** The form a manager sets quotas with: one rep or each rep of their list at once. */
function quotaForm(reps, onSaved) {
  const now = new Date();
  const rep = /** @type {HTMLSelectElement} */ (h('select', { id: 'quota-rep', name: 'user_id', required: true },
    h('option', { value: '' }, 'Choose a person'), reps.length > 1 ? h('option', { value: 'all' }, `Each of the ${reps.length} people listed`) : null,
    reps.map((r) => h('option', { value: r.id }, r.name))));
  const kind = /** @type {HTMLSelectElement} */ (h('select', { id: 'quota-kind' }, PERIODS.map(([v, t]) => h('option', { value: v, selected: v === 'quarter' }, t))));
  const month = /** @type {HTMLInputElement} */ (h('input', { id: 'quota-month', type: 'month', required: true, value: `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}` }));
  const amount = /** @type {HTMLInputElement} */ (h('input', { id: 'quota-amount', type: 'number', min: '0.01', step: '0.01', required: true, inputmode: 'decimal' }));
  const currency = /** @type {HTMLInputElement} */ (h('input', { id: 'quota-currency', required: true, value: 'EUR', maxlength: 3, size: 4, pattern: '[A-Za-z]{3}', autocomplete: 'off' }));
  const errs = Object.fromEntries(['user_id', 'period_start', 'amount', 'currency'].map((f) => [f, h('span', { class: 'field-error', id: `quota-${f}-error`, role: 'alert' })]));
  const save = h('button', { type: 'submit', class: 'primary', id: 'quota-save' }, 'Set quota');
  const field = (label, el, err) => {
    if (err) el.setAttribute('aria-describedby', err.id);
    return h('div', { class: 'form-field' }, h('label', { for: el.id }, label), el, err);
  };
  const el = h('form', { class: 'record-form', id: 'quota-form', 'aria-label': 'Set a quota', novalidate: true },
    field('Rep', rep, errs.user_id), field('Period', kind), field('Starting in', month, errs.period_start),
    field('Amount', amount, errs.amount), field('Currency', currency, errs.currency),
    h('div', { class: 'toolbar' }, save));
  el.addEventListener('submit', async (e) => {
    e.preventDefault();
    Object.values(errs).forEach((x) => { x.textContent = ''; });
    [rep, month, amount, currency].forEach((x) => x.removeAttribute('aria-invalid'));
    const bad = (f, input, msg) => { errs[f].textContent = msg; input.setAttribute('aria-invalid', 'true'); input.focus(); };
    if (!rep.value) { bad('user_id', rep, 'Choose a rep.'); return; }
    if (!month.value) { bad('period_start', month, 'Choose the first month of the period.'); return; }
    if (!(Number(amount.value) > 0)) { bad('amount', amount, 'Give an amount above zero.'); return; }
    const cur = currency.value.trim().toUpperCase();
    if (!/^[A-Z]{3}$/.test(cur)) { bad('currency', currency, 'A three-letter currency code, e.g. EUR.'); return; }
    const [start, end] = periodOf(kind.value, month.value);
    const ids = rep.value === 'all' ? reps.map((r) => r.id) : [Number(rep.value)];
    save.disabled = true;
    save.textContent = 'Saving…';
    try {
      for (const id of ids) {
        await api('/api/v1/quotas', { method: 'PUT', body: { user_id: id, period_start: start, period_end: end, amount: Number(amount.value), currency: cur } });
      }
      toast(ids.length > 1 ? `${ids.length} quotas set` : 'Quota set');
      await onSaved();
    } catch (ex) {
      const f = ex.field === 'period_end' ? 'period_start' : ex.field;
      const input = { user_id: rep, period_start: month, amount, currency }[f];
      if (input) bad(f, input, ex.message); else toast(ex.message, 'error');
    } finally {
      save.disabled = false;
      save.textContent = 'Set quota';
    }
  });
  return {
    el,
    /** Load a quota into the form to change its amount. */
    fill(x) {
      rep.value = String(x.user_id);
      const months = Math.round((Date.parse(x.period_end) - Date.parse(x.period_start)) / (30.44 * 86400000));
      kind.value = months >= 12 ? 'year' : months >= 3 ? 'quarter' : 'month';
      month.value = x.period_start.slice(0, 7);
      amount.value = String(x.amount);
      currency.value = x.currency;
      amount.focus();
    },
  };
}
