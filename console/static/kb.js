// @ts-check
// The knowledge base (list, search by relevance, read, write) and the assistant's figures
// (per intent volume and rates, the customer bot's containment, its settings).
// Everything comes from /api/v1/assistant/...; writing is for managers and admins (the
// server decides: a 403 is shown as such).
import { api, q, listAll } from './api.js';
import { h, toast, errorBox, fmtTime, table, scrollBox, present, fieldMessages } from './ui.js';
import { friendly, labels } from './fields.js';

const KINDS = [['howto', 'How-to'], ['manual', 'Equipment manual'], ['faq', 'FAQ']];
const kindLabel = (k) => (KINDS.find(([v]) => v === k) || [k, k])[1];
const pct = (x) => `${(Number(x) * 100).toFixed(1)} %`;

/** @param {any} session */
const canWrite = (session) => session && session.me && ['admin', 'manager'].includes(session.me.role);

/** @param {HTMLElement} root @param {string[]} args @param {any} session */
export async function kbView(root, [id], session) {
  if (id === 'new') return editView(root, null, session);
  if (id) return articleView(root, Number(id), session);
  root.append(h('h1', {}, 'Knowledge base'));
  const search = h('input', { type: 'search', placeholder: 'Ask a question or type key words', 'aria-label': 'Search articles', maxlength: 500, id: 'kb-q' });
  const kind = h('select', { 'aria-label': 'Kind', id: 'kb-kind' }, h('option', { value: '' }, 'All kinds'), KINDS.map(([v, l]) => h('option', { value: v }, l)));
  const list = scrollBox('Articles', { id: 'kb-list' });
  const bar = h('form', { class: 'toolbar', role: 'search' }, search, kind, h('button', { type: 'submit' }, 'Search'),
    canWrite(session) ? h('a', { href: '#/kb/new', class: 'button', id: 'kb-new' }, 'New article') : null);
  root.append(bar, list);
  async function load() {
    list.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    try {
      const r = await api(`/api/v1/assistant/articles${q({ q: /** @type {HTMLInputElement} */ (search).value.trim(), kind: /** @type {HTMLSelectElement} */ (kind).value, limit: 50 })}`);
      if (!r.items.length) {
        // say what to do: another search, or (none at all) who writes the articles
        const asked = /** @type {HTMLInputElement} */ (search).value.trim() || /** @type {HTMLSelectElement} */ (kind).value;
        list.replaceChildren(h('p', { class: 'muted empty' }, asked ? 'No article matches: try other words or all kinds.'
          : canWrite(session) ? 'No articles yet: write the first with "New article".' : 'No articles yet: managers and admins write them.'));
        return;
      }
      list.replaceChildren(table([
        { label: 'Title', render: (a) => h('a', { href: `#/kb/${a.id}` }, a.title) },
        { label: 'Kind', render: (a) => kindLabel(a.kind) },
        { label: 'For', render: (a) => (a.audience === 'public' ? 'Customers too' : 'Staff') },
        { label: 'Excerpt', render: (a) => a.snippet },
        { label: 'Relevance', render: (a) => (a.score === null ? '' : a.score.toFixed(2)) },
        { label: 'Updated', render: (a) => fmtTime(a.updated_at) },
      ], r.items, (a) => { location.hash = `#/kb/${a.id}`; }));
    } catch (e) { list.replaceChildren(errorBox(e)); }
  }
  bar.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  kind.addEventListener('change', load);
  await load();
  return null;
}

/** @param {HTMLElement} root @param {number} id @param {any} session */
async function articleView(root, id, session) {
  try {
    const a = await api(`/api/v1/assistant/articles/${id}`);
    // the territory by its name (a bare "territory 7" said nothing)
    const territory = a.territory_id ? (await labels('territories', [a.territory_id])).get(a.territory_id) || `territory ${a.territory_id}` : null;
    root.append(...present(
      h('p', {}, h('a', { href: '#/kb' }, '← Knowledge base')),
      h('h1', { id: 'kb-title' }, a.title),
      h('p', { class: 'muted' }, `${kindLabel(a.kind)} · ${a.audience === 'public' ? 'customers too (the chat bot may quote it)' : 'staff only'}`
        + `${territory ? ` · for ${territory} only` : ''} · updated ${fmtTime(a.updated_at)}`
        + (a.tags.length ? ` · ${a.tags.join(', ')}` : '')),
      h('article', { id: 'kb-body' }, a.body.split(/\n\s*\n/).map((p) => h('p', {}, p))),
      canWrite(session) ? h('p', {}, h('a', { href: `#/kb/${id}/edit`, class: 'button', id: 'kb-edit', onclick: (e) => { e.preventDefault(); root.replaceChildren(); editView(root, a, session); } }, 'Edit')) : null,
    ));
  } catch (e) { root.append(errorBox(e)); }
  return null;
}

/** @param {HTMLElement} root @param {any} a @param {any} session */
async function editView(root, a, session) {
  root.append(h('h1', {}, a ? `Edit “${a.title}”` : 'New article'));
  if (!canWrite(session)) { root.append(h('p', { class: 'error' }, 'Only managers and admins write articles.')); return null; }
  const id = (/** @type {string} */ name) => `kb-form-${name}`;
  const title = /** @type {HTMLInputElement} */ (h('input', { id: id('title'), name: 'title', maxlength: 300, value: a ? a.title : '' }));
  const kind = /** @type {HTMLSelectElement} */ (h('select', { id: id('kind'), name: 'kind' }, KINDS.map(([v, l]) => h('option', { value: v, selected: a ? a.kind === v : v === 'howto' }, l))));
  const audience = /** @type {HTMLSelectElement} */ (h('select', { id: id('audience'), name: 'audience' },
    h('option', { value: 'internal', selected: !a || a.audience === 'internal' }, 'Staff only'),
    h('option', { value: 'public', selected: a && a.audience === 'public' }, 'Customers too (the chat bot may quote it)')));
  // the territory by its name (it asked for a territory's id, which nobody knows)
  const terrs = await listAll('/api/v1/territories', { sort: 'name' }, 500).catch(() => []);
  const current = a && a.territory_id && !terrs.some((t) => t.id === a.territory_id) ? [{ id: a.territory_id, name: `territory ${a.territory_id} (not visible to you)` }] : [];
  const territory = /** @type {HTMLSelectElement} */ (h('select', { id: id('territory_id'), name: 'territory_id' }, h('option', { value: '' }, 'Every territory'),
    [...terrs, ...current].map((t) => h('option', { value: t.id, selected: a && a.territory_id === t.id }, t.name))));
  const tags = /** @type {HTMLInputElement} */ (h('input', { id: id('tags'), name: 'tags', placeholder: 'pump, controller', value: a ? a.tags.join(', ') : '' }));
  const body = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: id('body'), name: 'body', rows: 16, maxlength: 100000 }, a ? a.body : ''));
  const err = h('p', { class: 'error', role: 'alert' });
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'record-form', id: 'kb-form' }));
  // a missing title or text, or one the API refuses, is said beside its field
  const msgs = fieldMessages(form);
  form.append(msgs.field('Title', title), msgs.field('Kind', kind), msgs.field('Audience', audience), msgs.field('Territory', territory),
    msgs.field('Tags (comma separated)', tags), msgs.field('Text', body), err,
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'primary' }, 'Save'),
      a ? h('button', { type: 'button', class: 'danger', onclick: remove }, 'Delete') : null));
  async function remove() {
    if (!confirm('Delete this article?')) return;
    try { await api(`/api/v1/assistant/articles/${a.id}`, { method: 'DELETE' }); toast('Article deleted'); location.hash = '#/kb'; } catch (e) { err.textContent = e.message; }
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    msgs.clear();
    if (!body.value.trim()) msgs.mark(body, 'is required');
    if (!title.value.trim()) msgs.mark(title, 'is required');
    if (!title.value.trim() || !body.value.trim()) return;
    /** @type {Record<string, any>} */
    const data = {
      title: title.value.trim(),
      body: body.value,
      kind: kind.value,
      audience: audience.value,
      tags: tags.value.split(',').map((x) => x.trim()).filter(Boolean),
    };
    if (territory.value) data.territory_id = Number(territory.value); else if (a) data.clear_territory = true;
    try {
      const saved = a
        ? await api(`/api/v1/assistant/articles/${a.id}`, { method: 'PATCH', body: data })
        : await api('/api/v1/assistant/articles', { method: 'POST', body: data });
      toast('Article saved');
      if (location.hash === `#/kb/${saved.id}`) { root.replaceChildren(); articleView(root, saved.id, session); } else location.hash = `#/kb/${saved.id}`;
    } catch (ex) {
      // "tags[2]" is the tags field's
      const el = ex.field && form.querySelector(`#${id(String(ex.field).replace(/[.[].*$/, ''))}`);
      if (el) msgs.mark(el, friendly(ex.message, ex.field)); else err.textContent = ex.message;
    }
  });
  root.append(form);
  return null;
}

/** The assistant's figures and the customer bot. @param {HTMLElement} root @param {string[]} _args @param {any} session */
export async function assistantView(root, _args, session) {
  const days = h('select', { id: 'assistant-days' }, [1, 7, 30, 90].map((d) => h('option', { value: d, selected: d === 30 }, `Last ${d} day${d > 1 ? 's' : ''}`)));
  const out = h('div', { id: 'assistant-figures' });
  // the period beside the title with its name (as on the KPIs page), not a bare full-width list
  root.append(h('div', { class: 'toolbar' }, h('h1', {}, 'Assistant'), h('label', { for: 'assistant-days' }, 'Period', days)), out);
  async function load() {
    try {
      const a = await api(`/api/v1/assistant/analytics${q({ days: /** @type {HTMLSelectElement} */ (days).value })}`);
      const parts = [];
      if (a.bot) {
        const b = a.bot;
        parts.push(h('h2', {}, 'Website chat bot'),
          h('dl', { class: 'figures', id: 'bot-figures' },
            h('dt', {}, 'Conversations'), h('dd', {}, b.conversations),
            h('dt', {}, 'Containment'), h('dd', { id: 'bot-containment' }, `${pct(b.containment_rate)} (${b.contained} answered without a person)`),
            h('dt', {}, 'Handed over'), h('dd', {}, `${b.handed_over}: asked ${b.handoffs_by_reason.asked}, low confidence ${b.handoffs_by_reason.low_confidence}, unhappy ${b.handoffs_by_reason.negative}, limit ${b.handoffs_by_reason.limit}`),
            h('dt', {}, 'Average visitor turns'), h('dd', {}, b.average_turns),
            h('dt', {}, 'Leads made'), h('dd', {}, b.leads),
            h('dt', {}, 'Meetings booked'), h('dd', {}, b.bookings)));
      }
      parts.push(h('h2', {}, 'Per intent'),
        h('p', { class: 'muted' }, `${a.conversations} ${a.conversations === 1 ? 'conversation' : 'conversations'} of users with the assistant${a.conversations ? `, ${a.average_turns} turns each on average` : ''}`),
        a.intents.length ? scrollBox('Figures per intent', {}, table([
          { label: 'Intent', render: (x) => (x.command_name ? `${x.intent}: ${x.command_name}` : x.intent) },
          { key: 'channel', label: 'Channel' },
          { key: 'volume', label: 'Volume' },
          { label: 'Success', render: (x) => pct(x.success_rate) },
          { label: 'Fallback', render: (x) => pct(x.fallback_rate) },
          { label: 'Handoff', render: (x) => pct(x.handoff_rate) },
          { label: 'Confirmations', render: (x) => pct(x.confirmation_rate) },
          { label: 'Refused', render: (x) => pct(x.refusal_rate) },
          { label: 'p95', render: (x) => `${Math.round(x.p95_ms)} ms` },
        ], a.intents)) : h('p', { class: 'muted' }, 'No messages in this period.'));
      out.replaceChildren(...parts);
    } catch (e) { out.replaceChildren(errorBox(e)); }
  }
  days.addEventListener('change', load);
  await load();
  if (session && session.me && ['admin', 'manager'].includes(session.me.role)) root.append(await settingsForm(session));
  return null;
}

/** @param {any} session */
async function settingsForm(session) {
  const box = h('section', { id: 'bot-settings' }, h('h2', {}, 'Chat bot settings'));
  try {
    const s = await api('/api/v1/assistant/bot/settings');
    const admin = session.me.role === 'admin';
    const enabled = h('input', { type: 'checkbox', name: 'enabled', checked: s.enabled, disabled: !admin });
    const num = (name, v, attrs = {}) => h('input', { name, type: 'number', value: v ?? '', disabled: !admin, ...attrs });
    // people by name, not by their user ids (the API takes the ids)
    const people = await listAll('/api/v1/users', { sort: 'name' }, 500).catch(() => []);
    const known = new Set(people.map((u) => u.id));
    const choices = (ids) => [...people.map((u) => ({ id: u.id, label: `${u.name || u.email}${u.active === false ? ' (inactive)' : ''}` })),
      ...ids.filter((i) => i !== null && !known.has(i)).map((i) => ({ id: i, label: `user ${i} (not visible to you)` }))];
    const pick = (name, id, empty) => h('select', { name, id: `bot-${name}`, disabled: !admin }, h('option', { value: '' }, empty),
      choices([id]).map((c) => h('option', { value: c.id, selected: c.id === id }, c.label)));
    const booking = h('select', { name: 'booking_user_ids', id: 'bot-booking_user_ids', multiple: true, size: Math.min(6, Math.max(2, people.length)), disabled: !admin },
      choices(s.booking_user_ids).map((c) => h('option', { value: c.id, selected: s.booking_user_ids.includes(c.id) }, c.label)));
    const owner = pick('lead_owner_id', s.lead_owner_id, '— no owner —');
    const handoff = pick('handoff_user_id', s.handoff_user_id, '— unassigned —');
    const minutes = num('meeting_minutes', s.meeting_minutes, { min: 10, max: 240 });
    const windowDays = num('window_days', s.window_days, { min: 1, max: 90 });
    const minScore = num('min_score', s.min_score, { min: 0, max: 1, step: 0.05 });
    const name = h('input', { name: 'name', value: s.name, maxlength: 40, required: true, disabled: !admin });
    const err = h('p', { class: 'error', role: 'alert' });
    // each setting with its own error line: the API names the field it refuses
    const field = (label, el) => {
      const id = `bot-${el.getAttribute('name')}`;
      el.id = id;
      el.setAttribute('aria-describedby', `${id}-error`);
      const mark = h('span', { class: 'field-error', id: `${id}-error`, role: 'alert' });
      // a checkbox sits before its words, on their line
      return h('div', { class: 'form-field' }, el.getAttribute('type') === 'checkbox'
        ? h('label', { class: 'inline' }, el, label) : [h('label', { for: id }, label), el], mark);
    };
    const form = h('form', { class: 'record-form', novalidate: true },
      admin ? null : h('p', { class: 'muted', id: 'bot-settings-note' }, 'Admins change these settings; you see them as they are.'),
      field('Answer website visitors', enabled), field('Name it signs its replies with (shown as a bot)', name),
      field('Offer the free times of (Ctrl/⌘-click for several)', booking),
      field('Owner of the leads it makes', owner), field('Assign handed-over chats to', handoff),
      field('Meeting length (minutes)', minutes), field('Booking window (days)', windowDays),
      field('Answer from the knowledge base above this score', minScore), err,
      admin ? h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'primary', id: 'bot-save' }, 'Save')) : null);
    const val = (el) => /** @type {HTMLInputElement} */ (el).value;
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.textContent = '';
      form.querySelectorAll('.field-error').forEach((x) => { x.textContent = ''; });
      form.querySelectorAll('[aria-invalid]').forEach((x) => x.removeAttribute('aria-invalid'));
      try {
        await api('/api/v1/assistant/bot/settings', {
          method: 'PUT',
          body: {
            enabled: /** @type {HTMLInputElement} */ (enabled).checked,
            booking_user_ids: [.../** @type {HTMLSelectElement} */ (booking).selectedOptions].map((o) => Number(o.value)),
            lead_owner_id: val(owner) ? Number(val(owner)) : null,
            handoff_user_id: val(handoff) ? Number(val(handoff)) : null,
            meeting_minutes: Number(val(minutes)),
            window_days: Number(val(windowDays)),
            min_score: Number(val(minScore)),
            name: val(name).trim(),
          },
        });
        toast('Bot settings saved');
      } catch (ex) {
        // a refused setting is marked on its field, in words; anything else under the form
        const slot = ex.field && form.querySelector(`#bot-${ex.field}-error`);
        if (slot) {
          slot.textContent = friendly(ex.message, ex.field);
          const el = /** @type {HTMLElement} */ (form.querySelector(`#bot-${ex.field}`));
          el.setAttribute('aria-invalid', 'true');
          el.focus();
        } else err.textContent = ex.message;
      }
    });
    box.append(form);
  } catch (e) { box.append(errorBox(e)); }
  return box;
}
