// @ts-check
// Activities: a month calendar that moves between months (buttons, or PageUp/PageDown),
// and the month's list; every activity opens its record page.
import { listAll } from './api.js';
import { h, errorBox, table, fmtTime, scrollBox, userDay, zonedMs, readMonth, badAddress } from './ui.js';
import { entityMeta, refLink } from './fields.js';

const ymd = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
// Days and months are the user's (their time zone): a calendar day's bounds are the
// instants it starts in that zone, and an instant falls on the user's day it is in there.
const bound = (d) => new Date(zonedMs(ymd(d))).toISOString();
const dayOf = (v) => (/^\d{4}-\d{2}-\d{2}$/.test(v) ? v : userDay(v));

export async function activitiesView(root, [monthArg]) {
  const [ty, tm] = userDay(Date.now()).split('-').map(Number);
  const now = new Date(ty, tm - 1, Number(userDay(Date.now()).slice(8)));
  // a month the address names (#/activities/2026-03), else this one; one it cannot read
  // (2026-13, "march") is said, never shown as another month
  const named = monthArg ? readMonth(monthArg) : null;
  if (typeof named === 'string') {
    root.append(h('h1', {}, 'Activities'), badAddress('month', monthArg, named, '#/activities', 'This month'));
    return null;
  }
  const month = named ? new Date(named[0], named[1] - 1, 1) : new Date(now.getFullYear(), now.getMonth(), 1);
  const next = new Date(month.getFullYear(), month.getMonth() + 1, 1);
  const prev = new Date(month.getFullYear(), month.getMonth() - 1, 1);
  const key = (d) => ymd(d).slice(0, 7);
  const meta = await entityMeta('activities');
  const title = month.toLocaleString([], { month: 'long', year: 'numeric' });
  root.append(h('div', { class: 'toolbar' }, h('h1', {}, 'Activities'),
    h('a', { class: 'button', href: `#/activities/${key(prev)}`, id: 'cal-prev', 'aria-label': 'Previous month' }, '←'),
    h('h2', { id: 'cal-month' }, title),
    h('a', { class: 'button', href: `#/activities/${key(next)}`, id: 'cal-next', 'aria-label': 'Next month' }, '→'),
    h('a', { class: 'button', href: '#/activities' }, 'Today'),
    meta.may_create ? h('a', { class: 'button primary', href: '#/new/activities' }, 'New activity') : null));
  let acts = [];
  try {
    acts = await listAll('/api/v1/activities', { filter: { and: [{ field: 'occurred_at', op: 'gte', value: bound(month) }, { field: 'occurred_at', op: 'lt', value: bound(next) }] } }, 2000);
  } catch (e) { root.append(errorBox(e)); }
  // a visual month grid; the list below carries the same activities for screen readers
  const cal = h('section', { class: 'calendar', 'aria-label': `Calendar of ${title}`, id: 'calendar' },
    ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].map((d) => h('div', { class: 'dow', 'aria-hidden': 'true' }, d)));
  const lead = (month.getDay() + 6) % 7;
  for (let i = 0; i < lead; i += 1) cal.append(h('div', { 'aria-hidden': 'true' }));
  for (let d = new Date(month); d < next; d = new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1)) {
    const day = acts.filter((a) => dayOf(a.start_at || a.due_at || a.occurred_at) === ymd(d));
    cal.append(h('div', { class: `day${ymd(d) === ymd(now) ? ' today' : ''}`, dataset: { day: ymd(d) } },
      h('strong', { 'aria-label': d.toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long' }) }, d.getDate()), day.slice(0, 4).map((a) => h('a', { href: `#/r/activities/${a.id}`, class: 'cal-item' }, `${a.type}: ${a.subject}`)),
      day.length > 4 ? h('div', { class: 'muted' }, `+${day.length - 4} more`) : null));
  }
  const onKey = (e) => {
    if (e.key === 'PageUp') location.hash = `#/activities/${key(prev)}`;
    if (e.key === 'PageDown') location.hash = `#/activities/${key(next)}`;
  };
  document.addEventListener('keydown', onKey);
  root.append(cal, h('h2', {}, 'List'),
    acts.length ? scrollBox('Activities', {}, table([{ label: 'When', render: (r) => fmtTime(r.occurred_at) }, { label: 'Type', key: 'type' }, { label: 'Subject', key: 'subject' }, { label: 'Status', key: 'status' },
      { label: 'Account', render: (r) => (r.account_id ? refLink('accounts', r.account_id) : '') }], acts, (r) => { location.hash = `#/r/activities/${r.id}`; }))
      : h('p', { class: 'muted' }, `No activities in ${title}.`));
  return () => document.removeEventListener('keydown', onKey);
}
