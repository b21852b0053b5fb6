// @ts-check
// The dispatcher's day: reps as lanes (by name), the day's work orders on them with the
// routing plan's ETA (planned) beside the scheduled or done time (actual), unassigned work
// on the left; drag a card (or focus it and pick a rep) to reassign; SLA countdowns that turn
// red when breached; "Plan today" and "Re-plan" call the routing API (managers and admins).
import { api, listAll, q, etagOf } from './api.js';
import { h, toast, errorBox, fmtTime, fmtClock, userDay, zonedMs, readDay, badAddress } from './ui.js';
import { labels } from './fields.js';

const ymd = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
const hhmm = (iso) => (iso ? fmtClock(iso) : '');

function countdown(wo, now) {
  if (!wo.sla_due_at || ['done', 'cancelled'].includes(wo.status)) return null;
  const left = (+new Date(wo.sla_due_at) - now) / 60000;
  const abs = Math.abs(left);
  const text = abs >= 1440 ? `${Math.round(abs / 1440)} d` : abs >= 60 ? `${Math.floor(abs / 60)} h ${Math.round(abs % 60)} min` : `${Math.round(abs)} min`;
  return { breached: left < 0, text: left < 0 ? `SLA breached ${text} ago` : `SLA in ${text}` };
}

export async function dispatchView(root, [dayArg], session) {
  // The day is the user's calendar day (their time zone): a Date whose local y/m/d are the
  // day, and its bounds are the instants it starts and ends in the user's zone.
  // A day the address names that does not exist is said, never shown as another day.
  const named = dayArg ? readDay(dayArg) : null;
  if (typeof named === 'string') {
    root.append(h('h1', {}, 'Dispatch'), badAddress('day', dayArg, named, '#/dispatch', 'Today'));
    return null;
  }
  const [y, m, d] = named || userDay(Date.now()).split('-').map(Number);
  const day = new Date(y, m - 1, d);
  const next = new Date(y, m - 1, d + 1);
  const prev = new Date(y, m - 1, d - 1);
  const bound = (/** @type {Date} */ x) => new Date(zonedMs(ymd(x))).toISOString();
  const me = session.me || {};
  const mayPlan = ['admin', 'manager'].includes(me.role);
  const status = h('span', { class: 'muted', role: 'status', id: 'dispatch-status' });
  const planBtn = mayPlan ? h('button', { type: 'button', id: 'plan-today', class: 'primary' }, 'Plan this day') : null;
  const replanBtn = mayPlan ? h('button', { type: 'button', id: 'replan' }, 'Re-plan the rest of the day') : null;
  root.append(h('div', { class: 'toolbar' }, h('h1', {}, 'Dispatch'),
    h('a', { class: 'button', href: `#/dispatch/${ymd(prev)}`, 'aria-label': 'Previous day' }, '←'),
    h('h2', { id: 'dispatch-day' }, day.toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long' })),
    h('a', { class: 'button', href: `#/dispatch/${ymd(next)}`, 'aria-label': 'Next day' }, '→'), planBtn, replanBtn, status));
  let reps; let wos; let plans;
  try {
    [reps, wos, plans] = await Promise.all([
      listAll('/api/v1/users', { filter: { and: [{ field: 'role', op: 'eq', value: 'rep' }, { field: 'active', op: 'eq', value: true }] } }, 500),
      listAll('/api/v1/work_orders', { filter: { or: [
        { and: [{ field: 'scheduled_start', op: 'gte', value: bound(day) }, { field: 'scheduled_start', op: 'lt', value: bound(next) }] },
        { and: [{ field: 'status', op: 'in', value: ['new', 'assigned', 'scheduled', 'in_progress'] }, { field: 'scheduled_start', op: 'is_null', value: true }] },
      ] } }, 2000),
      api(`/console/api/plans${q({ date: ymd(day) })}`).then((r) => r.plans).catch(() => []),
    ]);
  } catch (e) { root.append(errorBox(e)); return null; }
  // a manager dispatches their team's reps; an admin every rep
  if (me.role === 'manager') reps = reps.filter((r) => me.team_user_ids.includes(r.id) || me.team_territory_ids.includes(r.territory_id));
  const eta = new Map(); // work order id -> planned arrival
  for (const p of plans) {
    try {
      const fc = await api(`/api/v1/routing/plans/${p.id}/geojson`);
      // a work order's visit is "wo:<id>" (routing.crm_source)
      for (const f of fc.features) { const m = /^wo:(\d+)$/.exec(f.properties.visit_id || ''); if (f.properties.kind === 'stop' && m) eta.set(Number(m[1]), f.properties.eta); }
    } catch { /* a plan the caller may not read */ }
  }
  const accounts = await labels('accounts', wos.map((w) => w.account_id));
  // its lanes scroll sideways on a phone: a region the keyboard can focus even with no card
  const board = h('div', { class: 'board dispatch', id: 'dispatch', role: 'region', 'aria-label': 'Dispatch board', tabindex: 0 });
  root.append(board);
  const lanes = new Map();
  const lane = (id, title) => {
    const list = h('div', { class: 'cards' });
    const col = h('section', { class: 'column', dataset: { rep: id ?? '' }, 'aria-label': title }, h('h2', {}, h('span', {}, title), h('span', { class: 'muted count' })), list);
    col.addEventListener('dragover', (e) => { e.preventDefault(); col.classList.add('over'); });
    col.addEventListener('dragleave', () => col.classList.remove('over'));
    col.addEventListener('drop', (e) => { e.preventDefault(); col.classList.remove('over'); assign(Number(e.dataTransfer.getData('text/plain')), id); });
    lanes.set(id, { col, list });
    board.append(col);
  };
  lane(null, 'Unassigned');
  for (const r of reps) lane(r.id, r.name);
  const repOptions = [['', 'Unassigned'], ...reps.map((r) => [r.id, r.name])];
  const cards = new Map();
  function card(w) {
    const sla = countdown(w, Date.now());
    const planned = eta.get(w.id);
    const pick = h('select', { 'aria-label': `Assign ${w.title}`, class: 'reassign' }, repOptions.map(([v, t]) => h('option', { value: v, selected: String(v) === String(w.assignee_id ?? '') }, t)));
    pick.addEventListener('change', () => assign(w.id, pick.value ? Number(pick.value) : null));
    const c = h('article', { class: `card${sla && sla.breached ? ' breach' : ''}`, draggable: 'true', tabindex: 0, dataset: { wo: w.id } },
      h('a', { href: `#/r/work_orders/${w.id}`, draggable: 'false' }, h('strong', {}, w.title)),
      h('div', { class: 'muted' }, `${accounts.get(w.account_id) || 'account'} · ${w.priority} · ${w.status.replace('_', ' ')}`),
      h('div', {}, planned ? `planned ${hhmm(planned)}` : 'not planned', ' · ',
        w.completed_at ? `done ${hhmm(w.completed_at)}` : w.scheduled_start ? `scheduled ${hhmm(w.scheduled_start)}` : 'unscheduled'),
      sla ? h('div', { class: `sla${sla.breached ? ' error' : ''}`, dataset: { breached: String(sla.breached) } }, sla.text) : null,
      pick);
    c.addEventListener('dragstart', (e) => e.dataTransfer.setData('text/plain', String(w.id)));
    return c;
  }
  function place(w) {
    const old = cards.get(w.id);
    const c = card(w);
    if (old) old.c.remove();
    cards.set(w.id, { w, c });
    (lanes.get(w.assignee_id ?? null) || lanes.get(null)).list.append(c);
  }
  const counts = () => { for (const { col, list } of lanes.values()) col.querySelector('.count').textContent = String(list.children.length); };
  for (const w of wos.sort((a, b) => (a.sla_due_at || '9').localeCompare(b.sla_due_at || '9'))) place(w);
  counts();
  async function assign(id, repId) {
    const entry = cards.get(id);
    if (!entry || (entry.w.assignee_id ?? null) === repId) return;
    try {
      const body = { assignee_id: repId };
      if (repId && entry.w.status === 'new') body.status = 'assigned';
      const w = await api(`/api/v1/work_orders/${id}`, { method: 'PATCH', body, headers: { 'If-Match': etagOf(entry.w) } });
      place(w); counts();
      toast(`${w.title} → ${repId ? reps.find((r) => r.id === repId).name : 'unassigned'}`);
    } catch (e) {
      place(entry.w); counts();
      toast(e.status === 412 ? 'Changed by someone else meanwhile: reload the board' : e.message, 'error');
    }
  }
  const tick = setInterval(() => { for (const { w } of cards.values()) place(w); counts(); }, 60000); // countdowns
  async function waitReady(ids) {
    for (let i = 0; i < 120; i += 1) {
      const st = await Promise.all(ids.map((id) => api(`/api/v1/routing/plans/${id}`)));
      if (st.every((s) => s.status !== 'solving')) return st;
      await new Promise((r) => { setTimeout(r, 1000); });
    }
    return [{ status: 'solving', error: 'still solving after two minutes: look again later' }];
  }
  planBtn?.addEventListener('click', async () => {
    const tids = me.role === 'admin' ? [...new Set(reps.map((r) => r.territory_id).filter(Boolean))] : me.team_territory_ids;
    if (!tids.length) { status.textContent = 'No territory to plan.'; return; }
    planBtn.disabled = true; status.textContent = 'Planning…';
    try {
      const made = await Promise.all(tids.map((t) => api('/api/v1/routing/plans', { method: 'POST', body: { date: ymd(day), territory_id: t } })));
      const st = await waitReady(made.map((p) => p.id));
      const failed = st.filter((s) => s.status !== 'ready');
      status.textContent = !failed.length ? `Planned at ${fmtTime(new Date().toISOString())}`
        : `Planning did not finish: ${failed.map((s) => s.error || s.status).join('; ')}`;
      window.dispatchEvent(new HashChangeEvent('hashchange'));
    } catch (e) { status.textContent = e.message; } finally { planBtn.disabled = false; }
  });
  replanBtn?.addEventListener('click', async () => {
    if (!plans.length) { status.textContent = 'No plan for this day yet: "Plan this day" first.'; return; }
    replanBtn.disabled = true; status.textContent = 'Re-planning…';
    try {
      const out = await Promise.all(plans.map((p) => api(`/api/v1/routing/plans/${p.id}/replan`, { method: 'POST', body: {} })));
      status.textContent = `Re-planned: ${out.map((o) => `${(o.changes || []).length} rep(s) changed`).join('; ')}`;
      window.dispatchEvent(new HashChangeEvent('hashchange'));
    } catch (e) { status.textContent = e.message; } finally { replanBtn.disabled = false; }
  });
  board.dataset.ready = 'yes';
  return () => clearInterval(tick);
}
