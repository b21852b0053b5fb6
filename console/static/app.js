// @ts-check
// The console shell: sign-in, hash routing, one view at a time (each view returns a cleanup).
import { api, signIn, token, setUnauthorizedHandler } from './api.js';
import { h, toast, errorBox, badAddress, setUserZone, zoneName, setDefaultCurrency } from './ui.js';
import { resetMeta } from './fields.js';
import { mountSearch } from './search.js';
import { mountAssistant } from './assistant.js';

const records = (entity) => () => import('./records.js').then((m) => (root) => m.listView(root, entity));
const routes = {
  map: () => import('./map.js').then((m) => m.mapView),
  alerts: () => import('./ops.js').then((m) => m.alertsView),
  workorders: () => import('./ops.js').then((m) => m.workOrdersView),
  dispatch: () => import('./dispatch.js').then((m) => m.dispatchView),
  work_orders: records('work_orders'),
  device: () => import('./ops.js').then((m) => m.deviceView),
  accounts: records('accounts'),
  account: () => import('./records.js').then((m) => (root, [id]) => m.recordView(root, ['accounts', id])),
  contacts: records('contacts'),
  leads: records('leads'),
  opportunities: records('opportunities'),
  users: records('users'),
  territories: records('territories'),
  r: () => import('./records.js').then((m) => m.recordView),
  new: () => import('./records.js').then((m) => m.createView),
  pipeline: () => import('./pipeline.js').then((m) => m.pipelineView),
  activities: () => import('./crm.js').then((m) => m.activitiesView),
  import: () => import('./importer.js').then((m) => m.importView),
  analytics: () => import('./pipeline.js').then((m) => m.analyticsView),
  forecast: () => import('./forecast.js').then((m) => m.forecastView),
  calendar: () => import('./calendar.js').then((m) => m.calendarView),
  fleet: () => import('./devices.js').then((m) => m.fleetView),
  fieldwork: () => import('./fieldops.js').then((m) => m.fieldworkView),
  segments: () => import('./fieldops.js').then((m) => m.segmentsView),
  models: () => import('./models.js').then((m) => m.modelsView),
  reports: () => import('./reports.js').then((m) => m.reportsView),
  report: () => import('./reports.js').then((m) => m.reportView),
  dashboards: () => import('./reports.js').then((m) => m.dashboardsView),
  dashboard: () => import('./reports.js').then((m) => m.dashboardView),
  kpis: () => import('./reports.js').then((m) => m.kpisView),
  quotas: () => import('./quotas.js').then((m) => m.quotasView),
  kb: () => import('./kb.js').then((m) => m.kbView),
  assistant: () => import('./kb.js').then((m) => m.assistantView),
  settings: () => import('./settings.js').then((m) => m.settingsView),
};

export const session = { me: null };
let cleanup = null;

// Each view draws into its own box: a view still loading when the user moves on keeps
// drawing into its detached box (never into the next view), and is cleaned up when it ends.
let renderSeq = 0;
async function render() {
  if (!session.me) { leaveView(); return; } // signed out (the back button): drawn at sign-in
  const [name, ...args] = (location.hash.replace(/^#\/?/, '') || 'map').split('/');
  const view = document.getElementById('view');
  if (cleanup) { try { cleanup(); } catch (e) { console.warn(e); } cleanup = null; }
  const mine = ++renderSeq;
  const box = h('div', { class: 'view-root' });
  view.replaceChildren(box);
  document.querySelectorAll('#nav a').forEach((a) => {
    a.toggleAttribute('aria-current', a.getAttribute('href') === `#/${name}`);
  });
  const load = routes[name];
  if (!load) { box.append(errorBox({ status: 404 })); return; }
  let parts;
  try { parts = args.map(decodeURIComponent); } catch {
    box.append(badAddress('part', args.join('/'), 'cannot be read (a "%" must be followed by two hexadecimal digits)', `#/${name}`, 'Open the page without it'));
    return;
  }
  try {
    const fn = await load();
    const done = (await fn(box, parts, session)) || null;
    if (mine !== renderSeq) { if (done) done(); return; } // left while it loaded
    cleanup = done;
    document.body.dataset.view = name;
  } catch (err) {
    box.append(errorBox(err));
  }
}

// The view's cleanup run and its box emptied; a view still loading is dropped when it ends.
function leaveView() {
  renderSeq++;
  if (cleanup) { try { cleanup(); } catch (e) { console.warn(e); } cleanup = null; }
  document.getElementById('view').replaceChildren();
  delete document.body.dataset.view;
}

// Signed out, by the Sign out button or because the token stopped working (a request's 401,
// the live socket's 4401, another tab's sign-out): one path for both. The token is forgotten,
// the view stopped (its cleanup: the live map's socket) and emptied, the header's search hits
// and assistant conversation dropped (fm-signed-out), and the sign-in dialog asked for.
function signedOut() {
  const was = session.me;
  token.clear(); session.me = null; resetMeta(); leaveView(); showUser(); askSignIn();
  if (was) document.dispatchEvent(new Event('fm-signed-out'));
}

function askSignIn() {
  const dlg = /** @type {HTMLDialogElement} */ (document.getElementById('signin'));
  if (!dlg.open) dlg.showModal();
  /** @type {HTMLInputElement} */ (dlg.querySelector('input[name=email]')).focus();
}

// The tenant's settings every page needs: money without a currency is in its default one.
async function loadTenant() {
  const t = await api('/api/v1/tenant/settings').catch(() => null);
  setDefaultCurrency(t && t.default_currency);
}

async function start() {
  setUnauthorizedHandler(signedOut);
  document.getElementById('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(/** @type {HTMLFormElement} */ (e.target));
    const err = document.getElementById('signin-error');
    err.textContent = '';
    try {
      resetMeta();
      session.me = await signIn(f.get('email'), f.get('password'));
      /** @type {HTMLDialogElement} */ (document.getElementById('signin')).close();
      await loadTenant();
      showUser();
      render();
    } catch (ex) { err.textContent = ex.message; }
  });
  document.getElementById('signin').addEventListener('cancel', (e) => e.preventDefault());
  // Signing out revokes the token on the server (a copy of it no longer works), stops the
  // view (the live map's socket) and takes the user's records off the page behind the dialog.
  document.getElementById('signout').addEventListener('click', async () => {
    await api('/api/v1/auth/logout', { method: 'POST' }).catch(() => null);
    signedOut();
  });
  window.addEventListener('hashchange', render);
  document.addEventListener('fm-me-changed', showUser); // the settings page saved the user's zone
  mountNav();
  mountSearch(document.getElementById('search-slot'));
  mountAssistant(document.getElementById('search-slot'));
  if (token.get()) {
    try { session.me = await api('/api/v1/auth/me'); } catch { session.me = null; }
  }
  if (!session.me) { askSignIn(); return; }
  await loadTenant();
  showUser();
  render();
}

// The main navigation: a sidebar from 1100 px, a menu behind the header's button below.
function mountNav() {
  const nav = document.getElementById('nav');
  const toggle = document.getElementById('nav-toggle');
  const setOpen = (open) => {
    document.body.classList.toggle('nav-open', open);
    toggle.setAttribute('aria-expanded', String(open));
  };
  toggle.addEventListener('click', () => {
    const open = !document.body.classList.contains('nav-open');
    setOpen(open);
    if (open) /** @type {HTMLElement | null} */ (nav.querySelector('a:not([hidden])'))?.focus();
  });
  nav.addEventListener('click', (e) => { if (/** @type {HTMLElement} */ (e.target).closest('a')) setOpen(false); });
  nav.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && document.body.classList.contains('nav-open')) { setOpen(false); toggle.focus(); }
  });
}

// Only the links whose pages the server answers for the user's role (data-roles; none: all),
// and only the sections left with a link.
function showNavFor(role) {
  const nav = document.getElementById('nav');
  nav.querySelectorAll('a').forEach((a) => {
    const roles = a.dataset.roles ? a.dataset.roles.split(' ') : null;
    a.closest('li').hidden = !role || (roles !== null && !roles.includes(role));
  });
  nav.querySelectorAll('section').forEach((sec) => {
    sec.hidden = !sec.querySelector('li:not([hidden])');
  });
  nav.hidden = !role;
}

function showUser() {
  showNavFor(session.me ? session.me.role : null);
  const who = document.getElementById('who');
  setUserZone(session.me ? session.me.timezone : null);
  who.textContent = session.me ? `${session.me.email} (${session.me.role})` : '';
  // the zone times are shown in; the user changes it on their settings page
  if (session.me) who.append(h('small', { class: 'tz-note' }, h('a', { id: 'tz-note', href: '#/settings', title: 'Your settings: change the time zone' }, `Times in ${zoneName()}`)));
  document.getElementById('signout').hidden = !session.me;
  document.body.dataset.signedIn = session.me ? 'yes' : 'no';
}

export function go(hash) { location.hash = hash; }
export { toast, h };
start();
