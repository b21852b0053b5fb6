// @ts-check
// Revenue forecast (GET /api/v1/insights/forecast/pipeline) over the deals the user may
// see: by month, quarter or year, for everyone or by owner or territory; closed-won history
// before the expected revenue and its 90% interval; trend and seasonality in words; what-if
// controls (win rate, slippage, new pipeline a month) re-query and show the difference
// against the baseline. Admins also see the stored forecasts' accuracy against actuals.
import { api, q } from './api.js';
import { h, errorBox, fmtMoney, scrollBox } from './ui.js';
import { forecastChart } from './chart.js';

const PERIODS = { month: 6, quarter: 4, year: 2 }; // how many periods ahead are shown
const MAX_GROUPS = 12;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** '2027-01' → 'Jan 2027', '2027-Q1' → 'Q1 2027', '2027' as it is. @param {string} p */
export function periodName(p) {
  const m = /^(\d{4})-(\d{2})$/.exec(p);
  if (m) return `${MONTHS[Number(m[2]) - 1]} ${m[1]}`;
  const qm = /^(\d{4})-(Q\d)$/.exec(p);
  return qm ? `${qm[2]} ${qm[1]}` : p;
}

/** A signed amount: '+€4,200', '−€300', '±€0'. @param {number} v @param {string} cur */
export const fmtSigned = (v, cur) => `${v > 0.005 ? '+' : v < -0.005 ? '−' : '±'}${fmtMoney(Math.abs(v), cur)}`;

const sum = (xs) => xs.reduce((a, x) => a + Number(x || 0), 0);

export async function forecastView(root, _args, session) {
  const field = (label, input) => h('label', {}, label, input);
  const select = (id, options) => /** @type {HTMLSelectElement} */ (h('select', { id },
    options.map(([v, t]) => h('option', { value: v }, t))));
  const period = select('fc-period', [['month', 'Month'], ['quarter', 'Quarter'], ['year', 'Year']]);
  const groupBy = select('fc-group', [['all', 'Everyone'], ['owner', 'Owner'], ['territory', 'Territory']]);
  const currency = /** @type {HTMLSelectElement} */ (h('select', { id: 'fc-currency' }));
  const currencyField = field('Currency', currency);
  currencyField.hidden = true;
  const number = (id, min, max, step, value) => /** @type {HTMLInputElement} */ (h('input', { id, type: 'number', min, max, step, value, inputmode: 'decimal' }));
  const win = number('fc-win', 0, 5, 0.05, 1);
  const slip = number('fc-slip', 0, 24, 1, 0);
  const fresh = number('fc-new', 0, 1e12, 1000, 0);
  const newLabel = h('span', {}, 'New pipeline a month');
  const reset = h('button', { type: 'button', id: 'fc-reset' }, 'Back to baseline');
  const whatIf = h('fieldset', { class: 'toolbar what-if' }, h('legend', {}, 'What if'),
    field('Win-rate factor (×)', win), field('Deals slip (months)', slip), h('label', {}, newLabel, fresh), reset);
  const status = h('p', { class: 'muted', id: 'fc-status', role: 'status' });
  const out = h('div', { id: 'fc-out', 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
  root.append(h('div', { class: 'toolbar' }, h('h1', {}, 'Revenue forecast'), field('Period', period), field('Group by', groupBy), currencyField),
    whatIf, status, out);
  const accuracy = session.me && session.me.role === 'admin' ? h('section', { id: 'fc-accuracy', 'aria-labelledby': 'fc-accuracy-h' },
    h('h2', { id: 'fc-accuracy-h' }, 'Forecast accuracy'), h('p', { class: 'muted' }, 'Loading…')) : null;
  if (accuracy) root.append(accuracy);

  /** the what-if as query parameters (only those away from the baseline) */
  const scenario = () => {
    const s = {};
    if (Number(win.value) !== 1) s.win_rate_factor = Number(win.value);
    if (Number(slip.value) !== 0) s.slip_months = Number(slip.value);
    if (Number(fresh.value) !== 0) s.new_pipeline = Number(fresh.value);
    return s;
  };
  let seq = 0;
  let timer;
  let unit = '';
  async function load() {
    const mine = ++seq;
    const bad = [win, slip, fresh].find((i) => !i.checkValidity() || i.value === '');
    if (bad) {
      status.textContent = `${bad.closest('label').firstChild.textContent}: ${bad.validationMessage || 'enter a number'}`;
      return;
    }
    status.textContent = '';
    out.setAttribute('aria-busy', 'true');
    const base = { group_by: groupBy.value, period: period.value, periods: PERIODS[period.value], ...(currency.value ? { currency: currency.value } : {}) };
    const what = scenario();
    const scen = Object.keys(what).length > 0;
    let fc; let baseline;
    try {
      [fc, baseline] = await Promise.all([
        api(`/api/v1/insights/forecast/pipeline${q({ ...base, ...what })}`),
        scen ? api(`/api/v1/insights/forecast/pipeline${q(base)}`) : null,
      ]);
    } catch (e) {
      if (mine !== seq) return;
      out.replaceChildren(errorBox(e));
      out.setAttribute('aria-busy', 'false');
      return;
    }
    if (mine !== seq) return; // a later query is on its way
    if (!currency.value && fc.currencies.length > 1) {
      // amounts are never added across currencies: pick one, and ask again
      currency.replaceChildren(...fc.currencies.map((c) => h('option', { value: c }, c)));
      currency.value = fc.currencies[0]; // the API lists the currency of most deals first
      currencyField.hidden = false;
      load();
      return;
    }
    unit = currency.value || fc.currencies[0] || '';
    newLabel.textContent = `New pipeline a month${unit ? ` (${unit})` : ''}`;
    render(fc, baseline, what);
    out.dataset.query = q({ ...base, ...what }); // what the figures shown answer
    out.setAttribute('aria-busy', 'false');
  }
  const soon = () => { clearTimeout(timer); timer = setTimeout(load, 350); };
  period.addEventListener('change', load);
  groupBy.addEventListener('change', load);
  currency.addEventListener('change', () => { load(); loadAccuracy(); });
  for (const i of [win, slip, fresh]) { i.addEventListener('input', soon); i.addEventListener('change', soon); }
  reset.addEventListener('click', () => { win.value = '1'; slip.value = '0'; fresh.value = '0'; load(); });

  function groupName(g, by) {
    if (by === 'all') return 'All deals you may see';
    if (g.name) return g.name;
    return by === 'owner' ? 'No owner' : 'No territory';
  }

  function words(g) {
    const trend = g.trend_per_month === null
      ? 'Trend: not enough closed-won history yet (about a year of months is needed).'
      : Math.abs(g.trend_per_month) < 0.5 ? 'Trend: flat closed-won revenue.'
        : `Trend: ${fmtSigned(g.trend_per_month, unit)} per month in closed-won revenue.`;
    const season = g.seasonal === null ? 'Seasonality: not enough history to tell.'
      : g.seasonal ? 'Seasonality: seasonal pattern detected (a yearly cycle).' : 'Seasonality: none detected.';
    const conv = g.win_rate === null
      ? 'No deal closed in the last three years: new pipeline is not converted.'
      : `History win rate ${Math.round(g.win_rate * 100)}% of the amount closed${g.sales_cycle_days !== null ? `, typical sales cycle ${Math.round(g.sales_cycle_days)} days` : ''}.`;
    return h('ul', { class: 'fc-words' }, h('li', { class: 'fc-trend' }, trend), h('li', { class: 'fc-season' }, season), h('li', { class: 'fc-conv' }, conv));
  }

  function render(fc, baseline, what) {
    const by = fc.group_by;
    if (!fc.items.length) {
      out.replaceChildren(h('p', { class: 'empty' }, 'No open deals and no closed-won history yet among the deals you may see: the forecast appears once deals are in the pipeline or won.'));
      return;
    }
    const baseOf = new Map((baseline ? baseline.items : []).map((g) => [g.group, g]));
    const total = (g) => sum(g.periods.map((p) => p.expected));
    const groups = fc.items.slice().sort((a, b) => total(b) - total(a));
    const parts = [];
    if (baseline) {
      const bits = [];
      if (what.win_rate_factor !== undefined) bits.push(`win rates ×${what.win_rate_factor}`);
      if (what.slip_months !== undefined) bits.push(`open deals slip ${what.slip_months} month${what.slip_months === 1 ? '' : 's'}`);
      if (what.new_pipeline !== undefined) bits.push(`${fmtMoney(what.new_pipeline, unit)} of new pipeline a month`);
      const all = sum(groups.map(total));
      const was = sum(baseline.items.map(total));
      parts.push(h('p', { class: 'fc-scenario' }, `Scenario: ${bits.join(', ')}. Expected over the periods shown: ${fmtMoney(all, unit)}, ${fmtSigned(all - was, unit)} against the baseline (${fmtMoney(was, unit)}).`));
    }
    if (fc.currencies.length > 1) parts.push(h('p', { class: 'muted' }, `Deals in ${unit} only; the others are in ${fc.currencies.filter((c) => c !== unit).join(', ')}.`));
    for (const g of groups.slice(0, MAX_GROUPS)) {
      const b = baseOf.get(g.group);
      const name = groupName(g, by);
      const hid = `fc-h-${g.group}`;
      const future = g.periods.map((p, i) => ({ label: periodName(p.period), value: p.expected, low: p.low, high: p.high, baseline: b ? b.periods[i].expected : null, run: p.history_point }));
      const past = g.past.map((p) => ({ label: periodName(p.period), value: p.actual }));
      const now = g.periods[0];
      const soFar = now && now.won_to_date > 0 ? h('p', { class: 'fc-won' }, `Won so far in ${periodName(now.period)}: ${fmtMoney(now.won_to_date, unit)}, beside the ${fmtMoney(now.expected, unit)} still expected from the pipeline.`) : null;
      const diff = b ? h('p', { class: 'fc-diff' }, `Against the baseline: ${fmtSigned(total(g) - total(b), unit)} (${fmtMoney(total(g), unit)} instead of ${fmtMoney(total(b), unit)}).`) : null;
      const cols = ['Period', 'Expected', '90% interval', ...(b ? ['Baseline', 'Difference'] : []), 'Open deals', 'From new pipeline', 'Run rate (history)'];
      const rows = g.periods.map((p, i) => h('tr', { dataset: { period: p.period } },
        h('th', { scope: 'row' }, periodName(p.period)),
        h('td', { class: 'fc-expected' }, fmtMoney(p.expected, unit)),
        h('td', {}, `${fmtMoney(p.low, unit)} – ${fmtMoney(p.high, unit)}`),
        b ? [h('td', {}, fmtMoney(b.periods[i].expected, unit)), h('td', { class: 'fc-delta' }, fmtSigned(p.expected - b.periods[i].expected, unit))] : null,
        h('td', {}, String(p.deals)),
        h('td', {}, fmtMoney(p.from_new_pipeline, unit)),
        h('td', {}, p.history_point === null ? 'not enough history' : `${fmtMoney(p.history_point, unit)} (${fmtMoney(p.history_low, unit)} – ${fmtMoney(p.history_high, unit)})`)));
      parts.push(h('section', { class: 'fc-group', 'aria-labelledby': hid, dataset: { group: g.group } },
        h('h2', { id: hid }, name), words(g), soFar, diff,
        past.length ? null : h('p', { class: 'muted' }, 'No closed-won history yet: only the open pipeline is forecast.'),
        forecastChart(past, future, { unit, title: `${name}: revenue by ${fc.period}` }),
        scrollBox(`Forecast of ${name} by ${fc.period}`, {}, h('table', { class: 'grid' },
          h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows)))));
    }
    if (groups.length > MAX_GROUPS) parts.push(h('p', { class: 'muted' }, `${groups.length - MAX_GROUPS} smaller groups are not shown.`));
    out.replaceChildren(...parts);
  }

  async function loadAccuracy() {
    if (!accuracy) return;
    let acc;
    const q = currency.value ? `?currency=${encodeURIComponent(currency.value)}` : '';
    try { acc = await api(`/api/v1/insights/forecast/accuracy${q}`); } catch (e) { accuracy.replaceChildren(accuracy.firstChild, errorBox(e)); return; }
    const heading = accuracy.firstChild;
    if (!acc.items.length) {
      accuracy.replaceChildren(heading, h('p', { class: 'empty' }, 'No finished month has a stored forecast yet: a forecast of every month ahead is stored each night, and a month is scored once it is over.'));
      return;
    }
    // XXX: snapshots from before they were kept per currency (every currency added)
    const cur = acc.currency && acc.currency !== 'XXX' ? acc.currency : undefined;
    accuracy.replaceChildren(heading,
      h('p', { class: 'fc-accuracy-summary' }, `Mean absolute error ${fmtMoney(acc.mean_abs_error, cur)} · actual inside the 90% interval in ${Math.round(acc.interval_coverage * 100)}% of ${acc.items.length} month${acc.items.length === 1 ? '' : 's'}.`),
      scrollBox('Forecast accuracy by month', {}, h('table', { class: 'grid' },
        h('thead', {}, h('tr', {}, ['Month', 'Forecast made on', 'Expected', '90% interval', 'Actual', 'Error', 'Within interval'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, acc.items.map((m) => h('tr', {},
          h('th', { scope: 'row' }, periodName(m.month)),
          h('td', {}, m.taken_on),
          h('td', {}, fmtMoney(m.expected, cur)),
          h('td', {}, `${fmtMoney(m.low, cur)} – ${fmtMoney(m.high, cur)}`),
          h('td', {}, fmtMoney(m.actual, cur)),
          h('td', {}, fmtSigned(m.error, cur)),
          h('td', {}, m.within_interval ? 'yes' : 'no')))))));
  }

  await load();
  await loadAccuracy();
  return () => { clearTimeout(timer); seq += 1; };
}
