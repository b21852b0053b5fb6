// @ts-check
// The models' page (GET /api/v1/insights/models): each model's active version with its card
// in words and units, its open drift alerts, its version history, and "Train now".
// Admins activate a version or roll back to an older one (POST .../models/{name}/activate,
// after a confirmation); managers read the cards and train (the API lets them queue
// training and read drift) but do not switch versions: that re-scores every open record.
import { api } from './api.js';
import { h, toast, errorBox, fmtTime, fmtDate, scrollBox } from './ui.js';
import { human } from './fields.js';

const NAMES = { 'lead-score': 'Lead score', 'opportunity-win': 'Win probability', 'account-churn': 'Churn risk' };
const RECORDS = { leads: 'open leads', opportunities: 'open opportunities', accounts: 'customer accounts' };
const OUTCOME = { 'lead-score': 'qualified or converted', 'opportunity-win': 'won', 'account-churn': 'lapsed' };
const titleOf = (m) => NAMES[m.name] || human(m.name.replace(/-/g, '_'));
const pct = (x, digits = 0) => `${(x * 100).toFixed(digits)} %`;
const POLL_MS = 1000;

/** A card's figures in words: validated (cv_*) or, with too little data, in-sample (train_*). */
function metricList(v, m) {
  const cv = Object.keys(v.metrics).some((k) => k.startsWith('cv_'));
  const pre = cv ? 'cv_' : 'train_';
  const x = (k) => v.metrics[pre + k];
  const rows = [];
  const add = (label, value, note) => { if (value !== null) rows.push(h('dt', {}, label), h('dd', { dataset: { metric: label } }, value, note ? h('span', { class: 'muted' }, ` · ${note}`) : null)); };
  const has = (k) => typeof x(k) === 'number';
  add('Ranking (AUC)', has('auc') ? x('auc').toFixed(3) : null, '0.5 is chance, 1 is a perfect ranking');
  if (has('threshold')) {
    const outcome = OUTCOME[m.name] || 'positive';
    add(`Precision at ${pct(x('threshold'))}`, has('precision') ? pct(x('precision')) : null, `of the records at or above it, the share that was ${outcome}`);
    add(`Recall at ${pct(x('threshold'))}`, has('recall') ? pct(x('recall')) : null, `of the ${outcome} records, the share it flagged`);
    add('F1 at that threshold', has('f1') ? x('f1').toFixed(3) : null, 'balance of precision and recall, 1 at best');
  }
  add('Brier score', has('brier') ? x('brier').toFixed(3) : null, 'mean squared error of the probabilities, 0 at best');
  add('Calibration error (ECE)', has('ece') ? `${(x('ece') * 100).toFixed(1)} percentage points` : null, 'between predicted and observed rates');
  add('Lift of the top 10 %', has('lift_top10') ? `${x('lift_top10').toFixed(2)} ×` : null, 'their outcome rate against the base rate');
  add('Base rate', has('base_rate') ? pct(x('base_rate'), 1) : null, null);
  const how = cv ? 'Validated on later records than it was trained on (time-ordered cross-validation).'
    : 'Figures on its own training records: too few records for a time-ordered validation, so they flatter the model.';
  return [h('p', { class: 'muted' }, how), rows.length ? h('dl', { class: 'figures' }, rows) : h('p', { class: 'muted' }, 'No figures recorded for this version.')];
}

/** "records from 3 Jan 2026 to 7 Dec 2026", or the window as recorded. */
function windowText(w) {
  if (!w) return null;
  const parts = String(w).split(' .. ');
  if (parts.length === 2 && parts.every((p) => !Number.isNaN(Date.parse(p)))) return `records created ${fmtDate(parts[0])} to ${fmtDate(parts[1])}`;
  return String(w);
}

function dataText(v) {
  const d = v.data || {};
  const bits = [];
  if (typeof d.rows === 'number') bits.push(`${d.rows} records`);
  if (typeof d.positives === 'number') bits.push(`${d.positives} with the outcome`);
  const w = windowText(d.window);
  if (w) bits.push(w);
  return bits.length ? `Trained on ${bits.join(', ')}.` : null;
}

function featureText(v) {
  const p = v.params || {};
  const names = [...(p.numeric || []), ...(p.categorical || []), ...(p.context || [])].filter((x) => typeof x === 'string');
  return names.length ? `Features: ${names.map((n) => human(n).toLowerCase()).join(', ')}.` : null;
}

function driftList(m) {
  if (!m.drift.length) return h('p', { class: 'muted drift-none' }, 'No open drift alerts: live records look like the training records.');
  return h('ul', { class: 'drift' }, m.drift.map((d) => h('li', { dataset: { feature: d.feature } },
    h('strong', {}, d.feature === '__score__' ? 'The scores themselves' : human(d.feature)),
    ` moved away from training (stability index ${d.psi.toFixed(2)}, 0.25 or more is a major shift, on ${d.live_rows} live records)`,
    h('span', { class: 'muted' }, ` · since ${fmtTime(d.raised_at)}, version ${d.model_version}`))));
}

export async function modelsView(root, _args, session) {
  const admin = session?.me?.role === 'admin';
  let stopped = false;
  const status = h('p', { id: 'train-status', role: 'status', 'aria-live': 'polite' });
  const list = h('div', { id: 'models' }, h('p', { class: 'muted' }, 'Loading the models'));
  const pick = /** @type {HTMLSelectElement} */ (h('select', { id: 'train-model', name: 'model' },
    Object.entries(NAMES).map(([v, label]) => h('option', { value: v }, label))));
  const trainBtn = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'primary', id: 'train-now' }, 'Train now'));
  root.append(h('h1', {}, 'Models'),
    h('p', { class: 'muted' }, admin
      ? 'Each model scores records with its active version. Train a new version from the CRM\'s records, or activate a recorded one: an older one is a rollback. Open records are re-scored with the version activated.'
      : 'Each model scores records with its active version. You can train a new version; administrators activate versions and roll back.'),
    h('div', { class: 'toolbar' }, h('label', { for: 'train-model' }, 'Model'), pick, trainBtn), status, list);

  const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });
  /** Polls `url` until its job is done or failed (or the view is left); the last state. */
  async function poll(url) {
    for (;;) {
      const s = await api(url);
      if (s.status === 'done' || s.status === 'failed' || stopped) return s;
      await sleep(POLL_MS);
    }
  }

  trainBtn.addEventListener('click', async () => {
    const model = pick.value;
    trainBtn.disabled = true;
    status.className = '';
    status.textContent = `Training ${NAMES[model]}: queued`;
    try {
      const job = await api('/api/v1/insights/train', { method: 'POST', body: { model } });
      status.textContent = `Training ${NAMES[model]}: running`;
      const done = await poll(job.poll);
      if (stopped) return;
      if (done.status === 'done') {
        const models = await load();
        const now = models.find((x) => x.name === model);
        status.textContent = `${NAMES[model]} trained: version ${now?.active_version || 'recorded'} is active, open records are re-scored with it.`;
        status.dataset.outcome = 'done';
      } else {
        // the job's last error, e.g. "RuntimeError: insufficient_data: lead-score: 12 rows ..."
        const why = String(done.error || 'the job failed');
        const little = why.match(/insufficient_data:\s*(?:[\w.-]+:\s*)?(.*)$/s);
        status.textContent = little
          ? `${NAMES[model]} not trained, too little data: ${little[1]}. The active version stays.`
          : `${NAMES[model]} not trained: ${why.replace(/^\w+Error:\s*/, '')}`;
        status.className = 'error';
        status.dataset.outcome = 'refused';
      }
    } catch (e) {
      status.textContent = `Training refused: ${e.message}`;
      status.className = 'error';
      status.dataset.outcome = 'refused';
    } finally { trainBtn.disabled = false; }
  });

  function confirmActivate(m, v, rollback) {
    const dlg = /** @type {HTMLDialogElement} */ (h('dialog', { id: 'confirm-activate', 'aria-labelledby': 'confirm-activate-title' }));
    const err = h('p', { class: 'error', role: 'alert' });
    const verb = rollback ? 'Roll back' : 'Activate';
    const yes = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'primary', id: 'confirm-activate-yes' }, verb));
    dlg.append(h('h2', { id: 'confirm-activate-title' }, `${verb} ${titleOf(m)} to version ${v.version}?`),
      h('p', {}, `Version trained ${fmtTime(v.created_at)} replaces version ${m.active_version || 'none'}.`,
        m.entity ? ` Every one of the ${RECORDS[m.entity] || m.entity} is re-scored with it.` : ''),
      err, h('div', { class: 'toolbar' }, yes, h('button', { type: 'button', onclick: () => dlg.close() }, 'Cancel')));
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try {
        const r = await api(`/api/v1/insights/models/${encodeURIComponent(m.name)}/activate`, { method: 'POST', body: { version: v.version } });
        dlg.close();
        status.className = '';
        status.textContent = `${titleOf(m)}: version ${r.version} is active${r.rescore_poll ? ', re-scoring the open records' : ''}.`;
        await load();
        if (r.rescore_poll) {
          const s = await poll(r.rescore_poll);
          if (stopped) return;
          status.textContent = s.status === 'done' ? `${titleOf(m)}: version ${r.version} is active and the open records are re-scored with it.`
            : `${titleOf(m)}: version ${r.version} is active, but re-scoring failed: ${s.error || 'unknown error'}`;
          status.dataset.outcome = s.status;
        }
        toast(`${titleOf(m)}: version ${r.version} active`);
      } catch (e) { yes.disabled = false; err.textContent = e.message; }
    });
    dlg.addEventListener('close', () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  }

  function versionTable(m) {
    const activeAt = m.versions.find((v) => v.active)?.created_at;
    const auc = (v) => { const a = v.metrics.cv_auc ?? v.metrics.train_auc; return typeof a === 'number' ? a.toFixed(3) : '—'; };
    const rows = m.versions.map((v) => {
      let action = null;
      if (v.active) action = h('strong', {}, 'Active');
      else if (admin) {
        const rollback = activeAt !== undefined && Date.parse(v.created_at) < Date.parse(activeAt);
        action = h('button', { type: 'button', class: rollback ? 'rollback' : 'activate', dataset: { version: v.version },
          'aria-label': `${rollback ? 'Roll back' : 'Activate'} ${titleOf(m)} to version ${v.version}`, onclick: () => confirmActivate(m, v, rollback) },
        rollback ? 'Roll back' : 'Activate');
      }
      const by = v.last_activated_via === 'training' ? 'its training run' : v.last_activated_via === 'cli' ? 'an operator (command line)' : v.last_activated_by || 'a former user';
      const who = v.last_activated_at ? `${fmtTime(v.last_activated_at)} by ${by}` : '—';
      return h('tr', { dataset: { version: v.version, active: String(v.active) } },
        h('td', {}, h('code', {}, v.version)), h('td', {}, fmtTime(v.created_at)), h('td', {}, auc(v)),
        h('td', {}, typeof v.data?.rows === 'number' ? String(v.data.rows) : '—'), h('td', {}, who), h('td', {}, action || '—'));
    });
    return scrollBox(`Versions of ${titleOf(m)}`, { class: 'versions' }, h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, ['Version', 'Trained', 'AUC', 'Records', 'Last activated', ''].map((c, i) => h('th', { scope: 'col' }, i === 5 ? h('span', { class: 'visually-hidden' }, 'Action') : c)))),
      h('tbody', {}, rows)));
  }

  function card(m) {
    const active = m.versions.find((v) => v.active);
    const box = h('section', { class: 'related model-card', dataset: { model: m.name, active: m.active_version || '' } },
      h('h2', {}, titleOf(m)),
      h('p', { class: 'muted' }, m.entity ? `Scores ${RECORDS[m.entity] || m.entity}` : `Kind: ${m.kind}`,
        ` · ${m.versions_total} ${m.versions_total === 1 ? 'version' : 'versions'}`));
    if (active) {
      box.append(h('p', { class: 'active-version' }, 'Active version ', h('code', {}, active.version), `, trained ${fmtTime(active.created_at)}`),
        ...[dataText(active), featureText(active)].filter(Boolean).map((t) => h('p', {}, t)),
        ...metricList(active, m));
    } else box.append(h('p', { class: 'empty' }, 'No active version: nothing is scored by this model.'));
    box.append(h('h3', {}, 'Drift'), driftList(m), h('h3', {}, 'Versions'), versionTable(m));
    if (m.versions_total > m.versions.length) box.append(h('p', { class: 'muted' }, `The ${m.versions.length} newest of ${m.versions_total} versions.`));
    return box;
  }

  async function load() {
    try {
      const r = await api('/api/v1/insights/models');
      if (stopped) return r.items;
      list.replaceChildren(...(r.items.length ? r.items.map(card)
        : [h('p', { class: 'empty' }, 'No model trained yet: choose one and "Train now" once the CRM has decided records (converted or unqualified leads, won or lost deals).')]));
      list.dataset.loaded = 'yes';
      return r.items;
    } catch (e) { list.replaceChildren(errorBox(e)); return []; }
  }
  await load();
  return () => { stopped = true; };
}
