// @ts-check
// The calendar: day, week and month views of people's meetings, visits, driving, work
// orders and bookings (GET /api/v1/calendar/events), in the signed-in user's time zone (users.timezone, else the browser's); a
// resource view of one day's bookings; drag to move and resize meetings and bookings
// (PATCH, with the server's 409 answer shown: what is in the way, and free times instead);
// and the create-meeting form with the slot finder (POST /api/v1/calendar/slots).
// Route: #/calendar/VIEW/YYYY-MM-DD with VIEW day | week | month | resources.
import { api, q, listAll } from './api.js';
import { h, toast, errorBox, fmtIn, fmtClock, userDay, zonedMs, zoneName, scrollBox, readDay, badAddress } from './ui.js';
import { input } from './fields.js';

/** @type {Promise<{id: number, label: string}[]> | null} */
let peopleList = null;
/** The people the caller may pick (by name; a rep may see only some): loaded once. */
const peopleOptions = (me) => {
  if (!peopleList) {
    peopleList = listAll('/api/v1/users', { sort: 'name' }, 500)
      .then((us) => us.filter((u) => u.active !== false).map((u) => ({ id: u.id, label: u.name || u.email })))
      .catch(() => []);
  }
  return peopleList.then((ps) => (ps.some((p) => p.id === me.user_id) ? ps : [{ id: me.user_id, label: 'Me' }, ...ps]));
};

/** A multiple choice of people by name (never their ids), `selected` chosen.
 * @param {any} me @param {number[]} selected @param {Record<string, any>} attrs */
function peoplePicker(me, selected, attrs) {
  const sel = /** @type {HTMLSelectElement} */ (h('select', { multiple: true, size: 3, ...attrs }));
  void peopleOptions(me).then((ps) => sel.replaceChildren(...ps.map((p) => h('option', { value: p.id, selected: selected.includes(p.id) }, p.id === me.user_id ? `${p.label} (me)` : p.label))));
  return sel;
}
const chosen = (/** @type {HTMLSelectElement} */ sel) => [...sel.selectedOptions].map((o) => Number(o.value));

const VIEWS = ['day', 'week', 'month', 'resources'];
// an hour of the grid written as the events' times are (the locale's clock: 5 PM, not 17:00 beside 05:30 PM)
const H12 = new Intl.DateTimeFormat([], { hour: 'numeric' }).resolvedOptions().hour12;
const hourLabel = (hr) => (H12 ? new Date(2000, 0, 1, hr).toLocaleTimeString([], { hour: 'numeric' }) : `${String(hr).padStart(2, '0')}:00`);
const FIRST_HOUR = 6;
const LAST_HOUR = 21;
const HOUR_PX = 48;
const SNAP_MIN = 15;
const PX_PER_MIN = HOUR_PX / 60;

/** @typedef {{user_id: number, kind: string, ref: string, title: string, start: string, end: string, editable: boolean}} CalEvent */
/** @typedef {{id: number, name: string, kind: string, capacity: number}} Resource */
/** @typedef {{id: number, resource_id: number, start: string, end: string, title: string, unit: number}} Booking */

const state = {
  /** @type {number[]} */
  people: [],
};

/** @param {Date} d */
const isoDay = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
/** @param {string} s */
const parseDay = (s) => {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s || '');
  const [y, mo, d] = (m ? m.slice(1) : userDay(Date.now()).split('-')).map(Number);
  return new Date(y, mo - 1, d);
};
/** @param {Date} d @param {number} n */
const addDays = (d, n) => new Date(d.getFullYear(), d.getMonth(), d.getDate() + n);
/** @param {Date} d */
const monday = (d) => addDays(d, -((d.getDay() + 6) % 7));
/** @param {Date} d */
const hhmm = (d) => fmtClock(d);
// Days are calendar days (a Date whose local year/month/day are the day); `at` is the
// instant a day's hour begins in the user's zone, so day boundaries are the user's.
/** @param {Date} d @param {number} [hr] */
const at = (d, hr = 0) => zonedMs(isoDay(d), hr);
/** @param {Date} d */
const atIso = (d) => new Date(at(d)).toISOString();
const today = () => userDay(Date.now());
/** @param {string} ref */
const patchPath = (ref) => {
  const [kind, id] = ref.split(':');
  return kind === 'activity' ? `/api/v1/calendar/meetings/${id}` : kind === 'booking' ? `/api/v1/calendar/bookings/${id}` : null;
};

/** The visible range of a view starting from `day`. @param {string} view @param {Date} day */
function range(view, day) {
  if (view === 'day' || view === 'resources') return [day, addDays(day, 1)];
  if (view === 'week') { const s = monday(day); return [s, addDays(s, 7)]; }
  const first = new Date(day.getFullYear(), day.getMonth(), 1);
  const s = monday(first);
  const last = new Date(day.getFullYear(), day.getMonth() + 1, 1);
  return [s, addDays(monday(addDays(last, 6)), 0)];
}

/** @param {string} view @param {Date} day @param {number} step */
function shift(view, day, step) {
  if (view === 'week') return addDays(day, 7 * step);
  if (view === 'month') return new Date(day.getFullYear(), day.getMonth() + step, 1);
  return addDays(day, step);
}

/** @param {string} view @param {Date} day */
const go = (view, day) => { location.hash = `#/calendar/${view}/${isoDay(day)}`; };

/**
 * Send a change; on 409 show what is in the way and the free times instead.
 * @param {string} path @param {string} method @param {any} body @param {HTMLElement} panel
 * @param {(alt: {start: string, end: string}) => void} [retry]
 * @returns {Promise<boolean>} whether it was applied
 */
async function send(path, method, body, panel, retry) {
  const r = await api(path, { method, body, raw: true });
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  panel.replaceChildren();
  if (r.ok) return true;
  const msg = (data && data.error && data.error.message) || `HTTP ${r.status}`;
  if (r.status !== 409) { toast(msg, 'error'); panel.append(h('p', { class: 'error', role: 'alert' }, msg)); return false; }
  const c = data.conflict;
  panel.append(h('div', { class: 'cal-conflict', role: 'alert' },
    h('strong', {}, `Conflict: ${msg}`),
    c ? h('p', {}, `In the way: ${c.title} (${c.kind}), ${hhmm(new Date(c.start))}–${hhmm(new Date(c.end))}`) : null,
    data.alternatives && data.alternatives.length ? h('p', {}, 'Free instead: ',
      data.alternatives.map((/** @type {any} */ a) => h('button', {
        type: 'button', class: 'cal-alt',
        onclick: () => retry && retry(a),
      }, fmtIn(a.start, { weekday: 'short', hour: '2-digit', minute: '2-digit' })))) : null,
    data.other_resources && data.other_resources.length
      ? h('p', {}, `Also free then: ${data.other_resources.map((/** @type {any} */ o) => o.name).join(', ')}`) : null));
  toast('Conflict: not moved', 'error');
  return false;
}

/**
 * Pointer drag on an element: vertical (time grid) or horizontal (resource rows).
 * Calls `done(deltaMin, resize, deltaDays)` when dropped somewhere else.
 * @param {HTMLElement} el @param {'y' | 'x'} axis @param {number} pxPerMin @param {number} dayWidth
 * @param {(deltaMin: number, resize: boolean, deltaDays: number) => void} done
 */
function draggable(el, axis, pxPerMin, dayWidth, done) {
  el.addEventListener('pointerdown', (ev) => {
    if (ev.button !== 0) return;
    const resize = /** @type {HTMLElement} */ (ev.target).classList.contains('cal-resize');
    const dw = dayWidth || Number(el.dataset.dayWidth || 0);
    const x0 = ev.clientX;
    const y0 = ev.clientY;
    const top0 = el.offsetTop;
    const left0 = el.offsetLeft;
    const size0 = axis === 'y' ? el.offsetHeight : el.offsetWidth;
    el.setPointerCapture(ev.pointerId);
    el.classList.add('dragging');
    ev.preventDefault();
    /** @param {PointerEvent} e */
    const snap = (e) => {
      const d = axis === 'y' ? e.clientY - y0 : e.clientX - x0;
      return Math.round(d / pxPerMin / SNAP_MIN) * SNAP_MIN;
    };
    /** @param {PointerEvent} e */
    const days = (e) => (axis === 'y' && dw > 0 && !resize ? Math.round((e.clientX - x0) / dw) : 0);
    /** @param {PointerEvent} e */
    const move = (e) => {
      const dm = snap(e) * pxPerMin;
      if (axis === 'y') {
        if (resize) el.style.height = `${Math.max(SNAP_MIN * pxPerMin, size0 + dm)}px`;
        else { el.style.top = `${top0 + dm}px`; el.style.transform = `translateX(${days(e) * dw}px)`; }
      } else if (resize) el.style.width = `${Math.max(SNAP_MIN * pxPerMin, size0 + dm)}px`;
      else el.style.left = `${left0 + dm}px`;
    };
    /** @param {PointerEvent} e */
    const up = (e) => {
      el.removeEventListener('pointermove', move);
      el.removeEventListener('pointerup', up);
      el.classList.remove('dragging');
      const dmin = snap(e);
      const dd = days(e);
      if (dmin !== 0 || dd !== 0) done(dmin, resize, dd);
    };
    el.addEventListener('pointermove', move);
    el.addEventListener('pointerup', up);
  });
}

/** @param {CalEvent} ev @param {number} dmin @param {boolean} resize @param {number} dd */
function moved(ev, dmin, resize, dd) {
  const s = new Date(ev.start);
  const e = new Date(ev.end);
  const start = resize ? s : new Date(+s + (dmin + dd * 1440) * 60000);
  const end = resize ? new Date(Math.max(+e + dmin * 60000, +s + SNAP_MIN * 60000)) : new Date(+e + (dmin + dd * 1440) * 60000);
  return { start: start.toISOString(), end: end.toISOString() };
}

/** @param {HTMLElement} root @param {CalEvent[]} events @param {Date[]} days @param {HTMLElement} panel @param {() => void} refresh */
function timeGrid(root, events, days, panel, refresh) {
  const height = (LAST_HOUR - FIRST_HOUR) * HOUR_PX;
  const grid = h('div', { class: 'cal-grid', style: `grid-template-columns: 3.5rem repeat(${days.length}, 1fr)` });
  grid.append(h('div', {}), ...days.map((d) => h('div', { class: `cal-head${isoDay(d) === today() ? ' today' : ''}` },
    h('a', { href: `#/calendar/day/${isoDay(d)}` }, d.toLocaleDateString([], { weekday: 'short', day: 'numeric', month: 'short' })))));
  const hours = h('div', { class: 'cal-hours', style: `height:${height}px` });
  for (let hr = FIRST_HOUR; hr < LAST_HOUR; hr += 1) hours.append(h('div', { style: `height:${HOUR_PX}px` }, hourLabel(hr)));
  grid.append(hours);
  const cols = days.map((d) => {
    const col = h('div', { class: 'cal-col', style: `height:${height}px`, dataset: { day: isoDay(d) } });
    const dayStart = at(d, FIRST_HOUR);
    const dayEnd = at(d, LAST_HOUR);
    for (const ev of events) {
      const s = Math.max(+new Date(ev.start), dayStart);
      const e = Math.min(+new Date(ev.end), dayEnd);
      if (e <= s) continue;
      const top = ((s - dayStart) / 60000) * PX_PER_MIN;
      const el = h('div', {
        class: `cal-ev kind-${ev.kind}${ev.editable ? ' editable' : ''}`,
        style: `top:${top}px;height:${Math.max(((e - s) / 60000) * PX_PER_MIN, 12)}px`,
        title: `${ev.title} ${hhmm(new Date(ev.start))}–${hhmm(new Date(ev.end))}`,
        dataset: { ref: ev.ref },
        role: 'button',
        'aria-label': `${ev.title}, ${hhmm(new Date(ev.start))} to ${hhmm(new Date(ev.end))}`,
      }, h('span', { class: 'cal-time' }, hhmm(new Date(ev.start))), ' ', ev.title,
      ev.editable ? h('span', { class: 'cal-resize', title: 'Drag to resize' }) : null);
      const path = patchPath(ev.ref);
      if (ev.editable && path) {
        draggable(el, 'y', PX_PER_MIN, 0, async (dmin, resize, dd) => {
          const body = moved(ev, dmin, resize, dd);
          const ok = await send(path, 'PATCH', body, panel, async (alt) => {
            const dur = +new Date(ev.end) - +new Date(ev.start);
            if (await send(path, 'PATCH', { start: alt.start, end: new Date(+new Date(alt.start) + dur).toISOString() }, panel)) refresh();
          });
          if (ok) toast('Moved');
          refresh();
        });
      }
      col.append(el);
    }
    return col;
  });
  grid.append(...cols);
  root.append(grid);
  // the day width is known once laid out: moving across days in the week view
  requestAnimationFrame(() => {
    const w = cols[0] ? cols[0].getBoundingClientRect().width : 0;
    for (const el of grid.querySelectorAll('.cal-ev.editable')) el.dataset.dayWidth = String(w);
  });
}

/** @param {HTMLElement} root @param {CalEvent[]} events @param {Date} first @param {Date} month */
function monthGrid(root, events, first, month) {
  // a grid to the eye only: a role=grid needs rows of cells; each day's link says its date
  const cal = h('div', { class: 'calendar', role: 'group', 'aria-label': month.toLocaleDateString([], { month: 'long', year: 'numeric' }) },
    ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].map((d) => h('div', { class: 'dow' }, d)));
  for (let i = 0; i < 42; i += 1) {
    const d = addDays(first, i);
    if (i >= 35 && d.getMonth() !== month.getMonth()) break;
    const next = addDays(d, 1);
    const day = events.filter((e) => +new Date(e.start) < at(next) && +new Date(e.end) > at(d) && e.kind !== 'driving');
    cal.append(h('div', { class: `day${isoDay(d) === today() ? ' today' : ''}${d.getMonth() !== month.getMonth() ? ' other' : ''}` },
      h('a', { href: `#/calendar/day/${isoDay(d)}`, 'aria-label': d.toLocaleDateString([], { weekday: 'long', month: 'long', day: 'numeric' }) }, d.getDate()),
      day.slice(0, 3).map((e) => h('div', { class: `cal-chip kind-${e.kind}` }, `${hhmm(new Date(e.start))} ${e.title}`)),
      day.length > 3 ? h('div', { class: 'muted' }, `+${day.length - 3} more`) : null));
  }
  root.append(cal);
}

/** @param {HTMLElement} root @param {Date} day @param {HTMLElement} panel @param {() => void} refresh */
async function resourceView(root, day, panel, refresh) {
  const [{ items: res }, { items: books }] = await Promise.all([
    api('/api/v1/calendar/resources'),
    api(`/api/v1/calendar/bookings${q({ start: atIso(day), end: atIso(addDays(day, 1)) })}`),
  ]);
  const width = 900;
  const pxPerMin = width / ((LAST_HOUR - FIRST_HOUR) * 60);
  const dayStart = at(day, FIRST_HOUR);
  // the day's 900 px timeline scrolls sideways in its own box on a narrow screen, not the page
  const table = scrollBox('Resources and their bookings', { class: 'cal-res', id: 'cal-resources' });
  table.append(h('div', { class: 'cal-res-row head' }, h('div', { class: 'cal-res-name' }, 'Resource'),
    h('div', { class: 'cal-res-line', style: `width:${width}px` },
      Array.from({ length: LAST_HOUR - FIRST_HOUR }, (_, i) => h('span', { style: `left:${i * 60 * pxPerMin}px` }, hourLabel(FIRST_HOUR + i))))));
  if (!res.length) table.append(h('p', { class: 'muted' }, 'No resources yet.'));
  for (const r of /** @type {Resource[]} */ (res)) {
    const line = h('div', { class: 'cal-res-line', style: `width:${width}px` });
    for (const b of /** @type {Booking[]} */ (books).filter((x) => x.resource_id === r.id)) {
      const s = Math.max(+new Date(b.start), dayStart);
      const e = Math.min(+new Date(b.end), dayStart + (LAST_HOUR - FIRST_HOUR) * 3600000);
      if (e <= s) continue;
      const el = h('div', {
        class: 'cal-ev kind-booking editable', role: 'button', dataset: { ref: `booking:${b.id}` },
        style: `left:${((s - dayStart) / 60000) * pxPerMin}px;width:${((e - s) / 60000) * pxPerMin}px;top:${(b.unit - 1) * 22}px`,
        'aria-label': `${b.title}, ${hhmm(new Date(b.start))} to ${hhmm(new Date(b.end))}`,
      }, `${hhmm(new Date(b.start))} ${b.title}`, h('span', { class: 'cal-resize x' }));
      const ev = { ...b, ref: `booking:${b.id}`, kind: 'booking', user_id: 0, editable: true };
      draggable(el, 'x', pxPerMin, 0, async (dmin, resize) => {
        if (await send(`/api/v1/calendar/bookings/${b.id}`, 'PATCH', moved(ev, dmin, resize, 0), panel)) toast('Moved');
        refresh();
      });
      line.append(el);
    }
    line.style.height = `${Math.max(r.capacity, 1) * 22}px`;
    table.append(h('div', { class: 'cal-res-row' }, h('div', { class: 'cal-res-name' }, `${r.name} (${r.kind}${r.capacity > 1 ? ` ×${r.capacity}` : ''})`), line));
  }
  root.append(table);
}

/** The create-meeting form with the slot finder. @param {HTMLElement} root @param {any} me @param {() => void} refresh */
async function meetingForm(root, me, refresh) {
  /** @type {Resource[]} */
  let res = [];
  try { res = (await api('/api/v1/calendar/resources')).items; } catch { res = []; }
  const results = h('div', { class: 'cal-slots', 'aria-live': 'polite' });
  const panel = h('div', {});
  const attendees = peoplePicker(me, state.people.length ? state.people : [me.user_id], { name: 'attendees' });
  const account = input({ name: 'account_id', kind: 'int', ref: 'accounts', enum: [], nullable: true }, null, 'cal-account');
  /** @returns {number | null} the chosen account; a name typed but not picked is refused */
  const accountId = () => { try { return account.get(); } catch (e) { toast(e.message, 'error'); account.focus(); throw e; } };
  // what is missing is said on its field, in words (not the browser's own bubble)
  const subjectError = h('span', { class: 'field-error', id: 'cal-subject-error', role: 'alert' });
  const slotError = h('p', { class: 'field-error', id: 'cal-slot-error', role: 'alert' });
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'cal-new', 'aria-label': 'New meeting', novalidate: true },
    h('h2', {}, 'New meeting'),
    h('label', {}, 'Subject ', h('input', { name: 'subject', required: true, maxlength: 300, 'aria-describedby': 'cal-subject-error' })), subjectError,
    h('label', {}, 'Attendees ', attendees),
    h('label', {}, 'Duration ', h('select', { name: 'duration' }, [15, 30, 45, 60, 90, 120].map((m) => h('option', { value: m, selected: m === 30 }, `${m} min`)))),
    h('label', { for: 'cal-account' }, 'On site at account (optional) ', account.el),
    h('label', {}, 'From ', h('input', { name: 'from', type: 'date', value: today() })),
    res.length ? h('fieldset', {}, h('legend', {}, 'Resources'), res.map((r) => h('label', { class: 'inline' },
      h('input', { type: 'checkbox', name: 'resource', value: r.id }), ` ${r.name}`))) : null,
    h('input', { type: 'hidden', name: 'start' }),
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'cal-find' }, 'Find slots'),
      h('button', { type: 'submit' }, 'Create meeting')),
    slotError, results, panel));
  const value = (/** @type {string} */ n) => String(new FormData(form).get(n) || '').trim();
  const subjectInput = /** @type {HTMLInputElement} */ (form.elements.namedItem('subject'));
  subjectInput.addEventListener('input', () => { if (value('subject')) { subjectError.textContent = ''; subjectInput.removeAttribute('aria-invalid'); } });
  const resources = () => new FormData(form).getAll('resource').map(Number);
  /** @type {HTMLButtonElement} */ (form.querySelector('.cal-find')).addEventListener('click', async () => {
    results.replaceChildren(h('p', { class: 'muted' }, 'Searching…'));
    const from = parseDay(value('from'));
    const start = new Date(Math.max(at(from), Date.now()));
    const body = {
      attendees: chosen(attendees), duration_min: Number(value('duration')),
      start: start.toISOString(), end: atIso(addDays(from, 14)), resources: resources(), mode: 'best', limit: 8,
    };
    let acc;
    try { acc = accountId(); } catch { results.replaceChildren(); return; }
    if (acc) Object.assign(body, { account_id: acc });
    try {
      const found = await api('/api/v1/calendar/slots', { method: 'POST', body });
      results.replaceChildren(found.items.length ? h('ol', {}, found.items.map((/** @type {any} */ s) => h('li', { class: 'cal-slot' },
        h('strong', {}, `${fmtIn(s.start, { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' })}–${hhmm(new Date(s.end))}`),
        ' ', h('span', { class: 'muted' }, s.reasons.join('; ')), ' ',
        h('button', {
          type: 'button',
          onclick: (/** @type {Event} */ e) => {
            /** @type {HTMLInputElement} */ (form.elements.namedItem('start')).value = s.start;
            slotError.textContent = '';
            results.querySelectorAll('.cal-slot').forEach((li) => li.classList.remove('chosen'));
            /** @type {HTMLElement} */ (/** @type {HTMLElement} */ (e.target).closest('.cal-slot')).classList.add('chosen');
          },
        }, 'Use'))))
        : h('p', {}, 'No free slot in the next two weeks.'));
    } catch (e) { results.replaceChildren(errorBox(e)); }
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const start = value('start');
    const subject = /** @type {HTMLInputElement} */ (form.elements.namedItem('subject'));
    subjectError.textContent = value('subject') ? '' : 'Give the meeting a subject.';
    subject.toggleAttribute('aria-invalid', !value('subject'));
    slotError.textContent = start ? '' : 'Find slots and choose one with "Use" first.';
    if (!value('subject')) { subject.focus(); return; }
    if (!start) { /** @type {HTMLButtonElement} */ (form.querySelector('.cal-find')).focus(); return; }
    const people = chosen(attendees);
    let acc;
    try { acc = accountId(); } catch { return; }
    const end = new Date(+new Date(start) + Number(value('duration')) * 60000).toISOString();
    const body = {
      subject: value('subject'), start, end, owner_id: people[0] || me.user_id, resource_ids: resources(), reminder_min: 15,
      tz: zoneName(),
    };
    if (acc) Object.assign(body, { account_id: acc });
    if (await send('/api/v1/calendar/meetings', 'POST', body, panel)) {
      toast('Meeting created');
      form.remove();
      refresh();
    }
  });
  root.prepend(form);
  /** @type {HTMLInputElement} */ (form.elements.namedItem('subject')).focus();
}

/** @param {HTMLElement} root @param {string[]} args @param {any} session */
export async function calendarView(root, args, session) {
  if (!document.querySelector('link[href="/console/calendar.css"]')) {
    document.head.append(h('link', { rel: 'stylesheet', href: '/console/calendar.css' }));
  }
  // a phone opens on the day: seven columns in 390 px leave an event "10:0" of its time
  const view = VIEWS.includes(args[0]) ? args[0] : matchMedia('(max-width: 600px)').matches ? 'day' : 'week';
  // a view or day the address names that does not exist is said, never shown as another one
  const named = args[1] ? readDay(args[1]) : null;
  const wrong = args[0] && !VIEWS.includes(args[0]) ? ['view', args[0], `is not one of the calendar's views (${VIEWS.join(', ')})`]
    : typeof named === 'string' ? ['day', args[1], named] : null;
  if (wrong) {
    root.append(h('h1', {}, 'Calendar'), badAddress(wrong[0], wrong[1], wrong[2], `#/calendar/${view}`, view === 'month' ? 'This month' : view === 'week' ? 'This week' : 'Today'));
    return null;
  }
  const day = parseDay(args[1]);
  const me = session.me || {};
  if (!state.people.length && me.user_id) state.people = [me.user_id];
  const [from, to] = range(view, day);
  const title = view === 'month' ? day.toLocaleDateString([], { month: 'long', year: 'numeric' })
    : view === 'week' ? `Week of ${from.toLocaleDateString([], { day: 'numeric', month: 'long', year: 'numeric' })}`
      : day.toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
  const people = peoplePicker(me, state.people, { 'aria-label': 'People shown' });
  const panel = h('div', { class: 'cal-panel' });
  const body = h('div', { class: 'cal-body' });
  const refresh = () => { void draw(); };
  root.append(h('h1', {}, 'Calendar'),
    h('div', { class: 'cal-bar' },
      h('nav', { 'aria-label': 'Calendar views' }, VIEWS.map((v) => h('a', {
        href: `#/calendar/${v}/${isoDay(day)}`, 'aria-current': v === view ? 'page' : undefined, class: 'cal-view',
      }, v[0].toUpperCase() + v.slice(1)))),
      h('button', { type: 'button', 'aria-label': 'Previous', onclick: () => go(view, shift(view, day, -1)) }, '‹'),
      h('button', { type: 'button', onclick: () => go(view, parseDay('')) }, 'Today'),
      h('button', { type: 'button', 'aria-label': 'Next', onclick: () => go(view, shift(view, day, 1)) }, '›'),
      h('strong', { class: 'cal-title' }, title),
      view !== 'resources' ? h('label', {}, ' People ', people) : null,
      h('button', { type: 'button', class: 'cal-new-btn', onclick: () => { if (!root.querySelector('.cal-new')) void meetingForm(body.parentElement || root, me, refresh); } }, 'New meeting')),
    panel, body);
  people.addEventListener('change', () => {
    state.people = chosen(people).slice(0, 50);
    refresh();
  });

  async function draw() {
    body.replaceChildren();
    try {
      if (view === 'resources') { await resourceView(body, day, panel, refresh); return; }
      const { items } = await api(`/api/v1/calendar/events${q({ start: atIso(from), end: atIso(to), user_ids: state.people.join(',') })}`);
      if (view === 'month') monthGrid(body, items, from, day);
      else timeGrid(body, items, view === 'day' ? [day] : Array.from({ length: 7 }, (_, i) => addDays(from, i)), panel, refresh);
    } catch (e) { body.append(errorBox(e)); }
  }
  await draw();
  return null;
}
