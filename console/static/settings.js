// @ts-check
// The signed-in user's own settings: who they are, and the time zone the console shows every
// date and time in (users.timezone through PATCH /api/v1/auth/me; a name that is no IANA
// time zone is refused by the API, and its reason is shown beside the field).
import { api } from './api.js';
import { h, toast, fmtTime } from './ui.js';
import { zoneList, friendly } from './fields.js';

export async function settingsView(root, _args, session) {
  const me = await api('/api/v1/auth/me');
  const device = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const inp = /** @type {HTMLInputElement} */ (h('input', {
    id: 'settings-timezone', name: 'timezone', value: me.timezone || '', list: zoneList(), autocomplete: 'off',
    maxlength: 64, 'aria-describedby': 'settings-timezone-help settings-timezone-error',
  }));
  const err = h('span', { class: 'field-error', id: 'settings-timezone-error', role: 'alert' });
  const save = h('button', { type: 'submit', class: 'primary', id: 'settings-save' }, 'Save');
  const useDevice = device && device !== me.timezone
    ? h('button', { type: 'button', id: 'settings-use-device', onclick: () => { inp.value = device; inp.focus(); } }, `Use this device's zone (${device})`)
    : null;
  const clock = h('p', { class: 'muted', id: 'settings-now' });
  const tick = () => { clock.textContent = `Now: ${fmtTime(new Date().toISOString())}`; };
  tick();
  const form = h('form', { class: 'record-form', novalidate: true, id: 'settings-form' },
    h('div', { class: 'form-field' },
      h('label', { for: 'settings-timezone' }, 'Time zone'), inp,
      h('small', { class: 'muted', id: 'settings-timezone-help' }, 'Dates and times in the console are shown in this zone: an IANA name, like Europe/Paris.'),
      err),
    h('div', { class: 'toolbar' }, save, useDevice));
  root.append(h('h1', {}, 'Your settings'),
    h('dl', { class: 'fields', id: 'settings-who' },
      h('dt', {}, 'Name'), h('dd', {}, me.name || me.email), h('dt', {}, 'E-mail'), h('dd', {}, me.email),
      h('dt', {}, 'Role'), h('dd', {}, me.role)),
    form, clock);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    inp.removeAttribute('aria-invalid');
    save.disabled = true;
    try {
      const updated = await api('/api/v1/auth/me', { method: 'PATCH', body: { timezone: inp.value.trim() } });
      if (session.me) session.me.timezone = updated.timezone;
      document.dispatchEvent(new CustomEvent('fm-me-changed')); // the header's note and every time shown
      tick();
      toast(`Times are now shown in ${updated.timezone}`);
    } catch (ex) {
      err.textContent = ex.field === 'timezone' ? friendly(ex.message, 'timezone') : ex.message;
      inp.setAttribute('aria-invalid', 'true');
      inp.focus();
    } finally { save.disabled = false; }
  });
  return null;
}
