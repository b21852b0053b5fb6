// @ts-check
// The signed-in user's own settings: who they are, and the time zone the console shows every
// date and time in (users.timezone through PATCH /api/v1/auth/me; a name that is no IANA
// time zone is refused by the API, and its reason is shown beside the field). Below it, the
// tenant's settings (GET/PUT /api/v1/tenant/settings): the default currency new records and
// the New forms take, which everyone sees and admins change.
import { api } from './api.js';
import { h, toast, fmtTime, setDefaultCurrency } from './ui.js';
import { zoneList, friendly, resetMeta } from './fields.js';

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
    form, clock, await tenantForm(session));
  onSubmitField(form, inp, err, save, 'timezone', async (value) => {
    const updated = await api('/api/v1/auth/me', { method: 'PATCH', body: { timezone: value } });
    if (session.me) session.me.timezone = updated.timezone;
    document.dispatchEvent(new CustomEvent('fm-me-changed')); // the header's note and every time shown
    tick();
    toast(`Times are now shown in ${updated.timezone}`);
  });
  return null;
}

// A one-field form's submit: the button is disabled meanwhile, and a refusal naming the
// field is explained beside it (marked invalid and focused); any other error is shown whole.
function onSubmitField(form, inp, err, save, field, send) {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    inp.removeAttribute('aria-invalid');
    save.disabled = true;
    try {
      await send(inp.value.trim());
    } catch (ex) {
      err.textContent = ex.field === field ? friendly(ex.message, field) : ex.message;
      inp.setAttribute('aria-invalid', 'true');
      inp.focus();
    } finally { save.disabled = false; }
  });
}

// The tenant's default currency: a code from the API's list of ISO 4217 currencies; a code
// it refuses ("eur", "EUX") is explained beside the field.
async function tenantForm(session) {
  const t = await api('/api/v1/tenant/settings');
  const admin = session.me && session.me.role === 'admin';
  const codes = h('datalist', { id: 'tenant-currency-options' }, t.currencies.map((c) => h('option', { value: c })));
  const inp = /** @type {HTMLInputElement} */ (h('input', {
    id: 'tenant-currency', name: 'default_currency', value: t.default_currency, list: codes.id, autocomplete: 'off',
    maxlength: 16, size: 6, disabled: !admin, 'aria-describedby': 'tenant-currency-help tenant-currency-error',
  }));
  const err = h('span', { class: 'field-error', id: 'tenant-currency-error', role: 'alert' });
  const save = admin ? h('button', { type: 'submit', class: 'primary', id: 'tenant-save' }, 'Save') : null;
  const form = h('form', { class: 'record-form', novalidate: true, id: 'tenant-form' },
    h('div', { class: 'form-field' },
      h('label', { for: 'tenant-currency' }, 'Default currency'), inp, codes,
      h('small', { class: 'muted', id: 'tenant-currency-help' },
        'New accounts, leads and deals are in this currency unless they name another: an ISO 4217 code, like EUR.'),
      err),
    admin ? h('div', { class: 'toolbar' }, save) : h('p', { class: 'muted', id: 'tenant-note' }, 'Admins change the company\'s settings.'));
  if (save) {
    onSubmitField(form, inp, err, save, 'default_currency', async (value) => {
      const updated = await api('/api/v1/tenant/settings', { method: 'PUT', body: { default_currency: value } });
      inp.value = updated.default_currency;
      setDefaultCurrency(updated.default_currency);
      resetMeta(); // the New forms' currency default comes with the fields' description
      toast(`New records are now in ${updated.default_currency}`);
    });
  }
  return h('section', { id: 'tenant-settings' }, h('h2', {}, 'Company settings'), form);
}
