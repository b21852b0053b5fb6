// @ts-check
// CRM screens: accounts (filters, detail with hierarchy and timeline), contacts, leads,
// activities with a month calendar. Lists use the API's filter language and keyset pages.
import { api, listAll, q } from './api.js';
import { h, errorBox, table, fmtMoney, fmtTime } from './ui.js';

/**
 * @typedef {{label: string, key?: string, render?: (row: any) => any}} Column
 * @typedef {{field: string, label: string, values: string[]}} Filter
 * @param {HTMLElement} root
 * @param {{title: string, path: string, columns: Column[], filters: Filter[], onRow?: (row: any) => void}} screen
 */
function listScreen(root, { title, path, columns, filters, onRow }) {
  const form = h('form', { class: 'filters', role: 'search' },
    h('label', {}, 'Search', h('input', { name: 'q', type: 'search' })),
    filters.map((f) => h('label', {}, f.label, h('select', { name: f.field }, h('option', { value: '' }, 'any'),
      f.values.map((v) => h('option', { value: v }, v))))),
    h('button', { type: 'submit' }, 'Apply'));
  const out = h('div', {});
  const more = h('button', { type: 'button', hidden: true }, 'More');
  root.append(h('h1', {}, title), form, out, more);
  let cursor = null;
  let params = {};
  async function load(reset) {
    if (reset) { out.replaceChildren(); cursor = null; }
    try {
      const page = await api(path + q({ ...params, limit: 50, cursor }));
      out.append(table(columns, page.items, onRow));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (e) { out.append(errorBox(e)); }
  }
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const and = filters.filter((f) => fd.get(f.field)).map((f) => ({ field: f.field, op: 'eq', value: fd.get(f.field) }));
    params = { q: fd.get('q'), filter: and.length ? { and } : undefined };
    load(true);
  });
  more.addEventListener('click', () => load(false));
  load(true);
}

export async function accountsView(root) {
  listScreen(root, {
    title: 'Accounts', path: '/api/v1/accounts',
    columns: [{ label: 'Name', key: 'name' }, { label: 'Type', key: 'type' }, { label: 'Health', key: 'health_score' },
      { label: 'Revenue', render: (r) => (r.annual_revenue ? fmtMoney(r.annual_revenue) : '') }, { label: 'Last visit', render: (r) => fmtTime(r.last_visit_at) }],
    filters: [{ field: 'type', label: 'Type', values: ['customer', 'prospect', 'partner', 'competitor'] }],
    onRow: (r) => { location.hash = `#/account/${r.id}`; },
  });
  return null;
}

export async function accountView(root, [id]) {
  let a;
  try { a = await api(`/api/v1/accounts/${id}`); } catch (e) { root.append(errorBox(e)); return null; }
  root.append(h('h1', {}, a.name), h('p', { class: 'muted' }, `${a.type}${a.address ? ` · ${a.address}` : ''}`));
  const cols = h('div', { class: 'cols2' });
  root.append(cols);
  const left = h('section', {}, h('h2', {}, 'Hierarchy'));
  const right = h('section', {}, h('h2', {}, 'Timeline'));
  cols.append(left, right);
  try {
    const chain = [];
    let cur = a;
    while (cur.parent_id && chain.length < 10) {
      try { cur = await api(`/api/v1/accounts/${cur.parent_id}`); chain.unshift(cur); } catch { chain.unshift({ id: cur.parent_id, name: '(not visible to you)' }); break; }
    }
    const kids = await listAll('/api/v1/accounts', { filter: { field: 'parent_id', op: 'eq', value: a.id } }, 200);
    left.append(h('ul', {}, chain.map((p) => h('li', {}, h('a', { href: `#/account/${p.id}` }, p.name))),
      h('li', {}, h('strong', {}, a.name), h('ul', {}, kids.map((k) => h('li', {}, h('a', { href: `#/account/${k.id}` }, k.name)))))));
    const roll = await api(`/api/v1/accounts/${a.id}/rollup`).catch(() => null);
    if (roll) left.append(h('pre', {}, JSON.stringify(roll, null, 1)));
  } catch (e) { left.append(errorBox(e)); }
  try {
    const tl = await api(`/api/v1/accounts/${a.id}/timeline${q({ limit: 50 })}`);
    const items = tl.items || tl;
    right.append(h('ol', {}, items.map((t) => h('li', {}, h('strong', {}, t.kind || t.type || ''), ' ', t.subject || t.title || t.name || '', ' ', h('span', { class: 'muted' }, fmtTime(t.at || t.occurred_at || t.created_at))))));
  } catch (e) { right.append(errorBox(e)); }
  return null;
}

export async function contactsView(root) {
  listScreen(root, {
    title: 'Contacts', path: '/api/v1/contacts',
    columns: [{ label: 'Name', render: (r) => `${r.first_name || ''} ${r.last_name || ''}`.trim() || r.company_name }, { label: 'Title', key: 'title' }, { label: 'E-mail', key: 'email' }, { label: 'Phone', key: 'phone' }],
    filters: [{ field: 'kind', label: 'Kind', values: ['individual', 'company'] }],
  });
  return null;
}

export async function leadsView(root) {
  listScreen(root, {
    title: 'Leads', path: '/api/v1/leads',
    columns: [{ label: 'Name', render: (r) => `${r.first_name || ''} ${r.last_name || ''}`.trim() }, { label: 'Company', key: 'company' }, { label: 'Source', key: 'source' }, { label: 'Status', key: 'status' }, { label: 'Owner', key: 'owner_id' }, { label: 'Region', key: 'region' }],
    filters: [{ field: 'source', label: 'Source', values: ['website', 'referral', 'cold_call', 'social_media', 'event', 'partner', 'other'] },
      { field: 'status', label: 'Status', values: ['new', 'contacted', 'qualified', 'unqualified', 'converted'] }],
  });
  return null;
}

export async function activitiesView(root) {
  const now = new Date();
  const month = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const next = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
  root.append(h('h1', {}, 'Activities'));
  let acts = [];
  try {
    acts = await listAll('/api/v1/activities', { filter: { and: [{ field: 'occurred_at', op: 'gte', value: month.toISOString() }, { field: 'occurred_at', op: 'lt', value: next.toISOString() }] } }, 1000);
  } catch (e) { root.append(errorBox(e)); }
  const cal = h('div', { class: 'calendar', role: 'grid', 'aria-label': month.toLocaleString([], { month: 'long', year: 'numeric' }) },
    ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].map((d) => h('div', { class: 'dow' }, d)));
  const lead = (month.getUTCDay() + 6) % 7;
  for (let i = 0; i < lead; i += 1) cal.append(h('div', {}));
  for (let d = new Date(month); d < next; d = new Date(+d + 86400000)) {
    const day = acts.filter((a) => new Date(a.start_at || a.due_at || a.occurred_at).toISOString().slice(0, 10) === d.toISOString().slice(0, 10));
    cal.append(h('div', { class: `day${d.toISOString().slice(0, 10) === now.toISOString().slice(0, 10) ? ' today' : ''}`, role: 'gridcell' },
      h('strong', {}, d.getUTCDate()), day.slice(0, 4).map((a) => h('div', {}, `${a.type}: ${a.subject}`)), day.length > 4 ? h('div', { class: 'muted' }, `+${day.length - 4}`) : null));
  }
  root.append(h('h2', {}, month.toLocaleString([], { month: 'long', year: 'numeric' })), cal, h('h2', {}, 'List'),
    table([{ label: 'When', render: (r) => fmtTime(r.occurred_at) }, { label: 'Type', key: 'type' }, { label: 'Subject', key: 'subject' }, { label: 'Status', key: 'status' }, { label: 'Account', render: (r) => (r.account_id ? h('a', { href: `#/account/${r.account_id}` }, `#${r.account_id}`) : '') }], acts));
  return null;
}
