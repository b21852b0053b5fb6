// @ts-check
// CSV import: upload, progress from the job, per-row errors.
import { api, q } from './api.js';
import { h, errorBox, fieldMessages } from './ui.js';

export async function importView(root) {
  const entity = h('select', { name: 'entity', id: 'import-entity' }, ['accounts', 'contacts', 'leads'].map((e) => h('option', { value: e }, e)));
  const KEYS = { accounts: ['name', 'external_id', 'id'], contacts: ['email', 'external_id', 'id'], leads: ['email', 'external_id', 'id'] };
  const key = h('select', { name: 'key', id: 'import-key' });
  const fillKeys = () => key.replaceChildren(...KEYS[entity.value].map((k) => h('option', { value: k }, k)));
  entity.addEventListener('change', fillKeys);
  fillKeys();
  const file = /** @type {HTMLInputElement} */ (h('input', { type: 'file', accept: '.csv,text/csv', id: 'import-file' }));
  const bar = h('progress', { class: 'progress', max: 100, value: 0, id: 'import-progress' });
  const state = h('p', { id: 'import-state', role: 'status' });
  const errors = h('div', { id: 'import-errors' });
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'filters' }));
  // no file chosen is said beside the file input (it was the browser's own bubble)
  const msgs = fieldMessages(form);
  form.append(h('label', {}, 'Records', entity), h('label', {}, 'Match existing by', key), h('label', {}, 'CSV file', file), msgs.slot(file),
    h('button', { type: 'submit', class: 'primary', id: 'import-submit' }, 'Import'));
  root.append(h('h1', {}, 'Import CSV'), form, bar, state, errors);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    msgs.clear();
    const f = file.files[0];
    if (!f) { msgs.mark(file, 'Choose the CSV file to import.'); return; }
    try {
      const job = await api(`/api/v1/imports${q({ entity: entity.value, key: key.value, filename: f.name })}`, {
        method: 'POST', body: f, headers: { 'Content-Type': 'text/csv', 'Idempotency-Key': crypto.randomUUID() },
      });
      let j = job;
      while (!['done', 'failed'].includes(j.status)) {
        await new Promise((r) => setTimeout(r, 400));
        j = await api(`/api/v1/imports/${job.id}`);
        bar.max = j.total_rows || 1;
        bar.value = j.processed_rows || 0;
        state.textContent = `${j.status}: ${j.processed_rows || 0} / ${j.total_rows ?? '?'} rows`;
      }
      bar.max = 1; bar.value = 1;
      state.textContent = `${j.status}: ${j.inserted_rows} inserted, ${j.updated_rows} updated, ${j.failed_rows} failed${j.error ? ` — ${j.error}` : ''}`;
      state.dataset.status = j.status;
      if (j.failed_rows) {
        const errs = await api(`/api/v1/imports/${job.id}/errors`);
        errors.append(h('h2', {}, 'Rows with errors'), h('table', { class: 'grid', id: 'import-error-table' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Line'), h('th', {}, 'Field'), h('th', {}, 'Message'))),
          h('tbody', {}, errs.items.map((r) => h('tr', {}, h('td', {}, r.line_no), h('td', {}, r.field || ''), h('td', {}, r.message))))));
      }
    } catch (ex) { state.dataset.status = 'error'; errors.append(errorBox(ex)); }
  });
  return null;
}
