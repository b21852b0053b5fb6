// @ts-check
// The workflow builder: a definition edited as a list of steps (branches and loops hold
// their own lists), its fields generated from the published JSON Schema
// (/api/v1/automation/schema), saved through the API (which validates and names the step
// at fault), with dry runs, pause/activate, export and import. Signed in through the
// console (its bearer token, or the session cookie).
const API = '/api/v1/automation';
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const list = $('list');
const editor = /** @type {HTMLFormElement} */ ($('editor'));
const errors = $('errors');
const out = $('out');
const kind = /** @type {HTMLSelectElement} */ ($('kind'));

/** @type {any} */
let schema = null;
/** @type {number | null} */
let current = null;
/** @type {any} */
let draft = null;

// the console keeps its bearer token here (console/static/api.js)
const TOKEN_KEY = 'fm.token';

/** @param {string} path @param {RequestInit} [init] */
async function api(path, init) {
  const token = localStorage.getItem(TOKEN_KEY);
  /** @type {Record<string, string>} */
  const headers = { ...(/** @type {Record<string, string>} */ (init && init.headers) || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  const url = path.startsWith('/api/') ? path : API + path; // another package's API, or ours
  const r = await fetch(url, { credentials: 'same-origin', ...init, headers });
  if (r.status === 401) {
    location.href = '/console/';
    throw new Error('signed out');
  }
  const body = r.status === 204 ? null : await r.json();
  if (!r.ok) throw new Error(body && body.error ? body.error.message : r.statusText);
  return body;
}

/** @param {string} path @param {string} method @param {any} body */
const send = (path, method, body) =>
  api(path, { method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

/** @param {string} ref */
const def = (ref) => schema.$defs[ref.split('/').pop() || ''];

/** The step kinds: action name -> its schema. */
function stepKinds() {
  /** @type {Record<string, any>} */
  const kinds = {};
  for (const [name, d] of Object.entries(schema.$defs)) {
    const a = /** @type {any} */ (d).properties && /** @type {any} */ (d).properties.action;
    if (a && a.enum) kinds[a.enum[0]] = { name, ...(/** @type {any} */ (d)) };
  }
  return kinds;
}

/** A property's schema without its null alternative. @param {any} p */
function plain(p) {
  if (p && p.anyOf) {
    const rest = p.anyOf.filter((/** @type {any} */ x) => x.type !== 'null');
    if (rest.length === 1) return { ...rest[0], default: p.default, nullable: true };
  }
  return p || {};
}

let choiceLists = 0;

/** @param {string} text @param {HTMLElement} child */
function labelled(text, child) {
  const l = document.createElement('label');
  l.append(text, child);
  return l;
}

/**
 * An input for one property; `set` stores the value back into the object.
 * @param {any} obj @param {string} key @param {any} prop
 */
function field(obj, key, prop) {
  const p = plain(prop);
  const set = (/** @type {any} */ v) => {
    if (v === '' || v === undefined || (p.nullable && v === null)) delete obj[key];
    else obj[key] = v;
  };
  if (p.enum) {
    const s = document.createElement('select');
    s.append(new Option('', ''), ...p.enum.map((/** @type {any} */ v) => new Option(String(v), String(v))));
    s.value = obj[key] === undefined ? '' : String(obj[key]);
    s.addEventListener('change', () => set(s.value));
    return labelled(key, s);
  }
  if (p.type === 'string' && Array.isArray(p.examples)) {
    // free text with the known values offered (event keys: every trigger type)
    const t = document.createElement('input');
    const choices = document.createElement('datalist');
    choices.id = `choices-${++choiceLists}`;
    // values only (no text): the label's name stays the field's
    choices.append(...p.examples.map((/** @type {string} */ v) => Object.assign(document.createElement('option'), { value: v })));
    t.setAttribute('list', choices.id);
    t.value = obj[key] === undefined ? '' : String(obj[key]);
    t.size = 24;
    t.addEventListener('change', () => set(t.value));
    const l = labelled(key, t);
    l.append(choices);
    return l;
  }
  if (p.type === 'boolean') {
    const c = document.createElement('input');
    c.type = 'checkbox';
    c.checked = obj[key] === undefined ? Boolean(p.default) : Boolean(obj[key]);
    c.addEventListener('change', () => (obj[key] = c.checked));
    return labelled(key, c);
  }
  if (p.type === 'integer' || p.type === 'number') {
    const n = document.createElement('input');
    n.type = 'number';
    if (obj[key] !== undefined) n.value = String(obj[key]);
    n.addEventListener('change', () => set(n.value === '' ? '' : Number(n.value)));
    return labelled(key, n);
  }
  if (p.type === 'string' && (p.maxLength || 0) <= 500) {
    const t = document.createElement('input');
    t.value = obj[key] === undefined ? '' : String(obj[key]);
    t.size = Math.min(60, Math.max(12, t.value.length + 2));
    t.addEventListener('change', () => set(t.value));
    return labelled(key, t);
  }
  if (p.type === 'string') {
    const a = document.createElement('textarea');
    a.value = obj[key] === undefined ? '' : String(obj[key]);
    a.addEventListener('change', () => set(a.value));
    return labelled(key, a);
  }
  // lists and objects of other shapes: JSON
  const a = document.createElement('textarea');
  a.value = obj[key] === undefined ? '' : JSON.stringify(obj[key]);
  a.addEventListener('change', () => {
    try {
      set(a.value.trim() === '' ? '' : JSON.parse(a.value));
      a.setCustomValidity('');
    } catch (e) {
      a.setCustomValidity(String(e));
      a.reportValidity();
    }
  });
  return labelled(`${key} (JSON)`, a);
}

/** Conditions as rows of field / op / value. @param {any[]} conds */
function conditions(conds) {
  const box = document.createElement('fieldset');
  box.append(Object.assign(document.createElement('legend'), { textContent: 'when' }));
  const ops = def('#/$defs/Condition').properties.op.enum;
  const draw = () => {
    box.querySelectorAll('.row').forEach((r) => r.remove());
    conds.forEach((c, i) => {
      const row = document.createElement('div');
      row.className = 'row';
      const f = Object.assign(document.createElement('input'), { value: c.field || '', placeholder: 'field' });
      f.addEventListener('change', () => (c.field = f.value));
      const o = document.createElement('select');
      o.append(...ops.map((/** @type {string} */ v) => new Option(v, v)));
      o.value = c.op || 'eq';
      c.op = o.value;
      o.addEventListener('change', () => (c.op = o.value));
      const v = Object.assign(document.createElement('input'), {
        value: c.value === undefined || c.value === null ? '' : JSON.stringify(c.value),
        placeholder: 'value (JSON)',
      });
      v.addEventListener('change', () => {
        try {
          c.value = v.value === '' ? null : JSON.parse(v.value);
        } catch {
          c.value = v.value; // plain text
        }
      });
      const del = Object.assign(document.createElement('button'), { type: 'button', textContent: '✕' });
      del.setAttribute('aria-label', 'remove condition');
      del.addEventListener('click', () => {
        conds.splice(i, 1);
        draw();
      });
      row.append(f, o, v, del);
      box.append(row);
    });
    const add = Object.assign(document.createElement('button'), { type: 'button', textContent: '+ condition', className: 'row' });
    add.addEventListener('click', () => {
      conds.push({ field: '', op: 'eq', value: null });
      draw();
    });
    box.append(add);
  };
  draw();
  return box;
}

/** @param {string} action */
function newStep(action) {
  const n = Math.floor(Math.random() * 1e6);
  return { id: `${action}_${n}`, action };
}

/** A list of steps (the definition's, a branch's then/otherwise, a loop's). @param {any[]} steps @param {string} title */
function stepList(steps, title) {
  const box = document.createElement('fieldset');
  box.append(Object.assign(document.createElement('legend'), { textContent: title }));
  const kinds = stepKinds();
  const draw = () => {
    box.querySelectorAll(':scope > .step, :scope > .row').forEach((e) => e.remove());
    steps.forEach((s, i) => box.append(stepCard(s, i, steps, draw, kinds)));
    const row = document.createElement('div');
    row.className = 'row';
    const pick = document.createElement('select');
    pick.append(...Object.keys(kinds).map((k) => new Option(k, k)));
    pick.setAttribute('aria-label', `new step in ${title}`);
    const add = Object.assign(document.createElement('button'), { type: 'button', textContent: '+ step' });
    add.addEventListener('click', () => {
      steps.push(newStep(pick.value));
      draw();
    });
    row.append(pick, add);
    box.append(row);
  };
  draw();
  return box;
}

/**
 * @param {any} s @param {number} i @param {any[]} steps @param {() => void} redraw
 * @param {Record<string, any>} kinds
 */
function stepCard(s, i, steps, redraw, kinds) {
  const card = document.createElement('fieldset');
  card.className = 'step';
  card.append(Object.assign(document.createElement('legend'), { textContent: `${i + 1}. ${s.action}` }));
  const d = kinds[s.action];
  const tools = document.createElement('div');
  tools.className = 'row';
  for (const [text, fn] of /** @type {[string, () => void][]} */ ([
    ['↑', () => i > 0 && steps.splice(i - 1, 0, steps.splice(i, 1)[0])],
    ['↓', () => i < steps.length - 1 && steps.splice(i + 1, 0, steps.splice(i, 1)[0])],
    ['remove', () => steps.splice(i, 1)],
  ])) {
    const b = Object.assign(document.createElement('button'), { type: 'button', textContent: text });
    b.addEventListener('click', () => {
      fn();
      redraw();
    });
    tools.append(b);
  }
  if (d && d.description) tools.append(Object.assign(document.createElement('small'), { textContent: d.description.split('\n')[0] }));
  card.append(tools);
  const row = document.createElement('div');
  row.className = 'row';
  card.append(row);
  for (const [key, prop] of Object.entries(d ? d.properties : {})) {
    if (key === 'action') continue;
    const p = /** @type {any} */ (prop);
    const items = p.items || {};
    if (p.type === 'array' && items.$ref === '#/$defs/Condition') {
      s[key] = s[key] || [];
      card.append(conditions(s[key]));
    } else if (p.type === 'array' && items.anyOf && items.discriminator) {
      s[key] = s[key] || [];
      card.append(stepList(s[key], key));
    } else {
      row.append(field(s, key, p));
    }
  }
  return card;
}

/**
 * The customer segments (insights) by name, for `segment.entered` / `segment.left`: the
 * choice is the trigger's condition `segment eq NAME`.
 * @param {any[]} conds
 */
function segmentPicker(conds) {
  const s = document.createElement('select');
  s.id = 'segment-choice';
  const chosen = conds.find((c) => c.field === 'segment' && c.op === 'eq');
  const now = chosen ? String(chosen.value) : '';
  s.append(new Option('any segment', ''));
  if (now) s.append(new Option(now, now));
  s.value = now;
  api('/api/v1/insights/segments')
    .then((r) => {
      for (const x of r.items) if (x.segment !== now) s.append(new Option(x.segment, x.segment));
      if (!r.items.length && !now) s.append(Object.assign(new Option('no segments computed yet', ''), { disabled: true }));
    })
    .catch(fail);
  s.addEventListener('change', () => {
    const rest = conds.filter((c) => !(c.field === 'segment' && c.op === 'eq'));
    conds.splice(0, conds.length, ...rest);
    if (s.value) conds.push({ field: 'segment', op: 'eq', value: s.value });
    render();
  });
  return labelled('segment', s);
}

function render() {
  errors.textContent = '';
  const top = def(schema.$ref);
  draft.trigger = draft.trigger || { on: 'manual' };
  draft.steps = draft.steps || [];
  const head = document.createElement('div');
  head.className = 'row';
  head.append(field(draft, 'name', top.properties.name), field(draft, 'description', top.properties.description));
  head.append(field(draft, 'max_runs_per_min', top.properties.max_runs_per_min));
  const trig = document.createElement('fieldset');
  trig.append(Object.assign(document.createElement('legend'), { textContent: 'trigger' }));
  const trow = document.createElement('div');
  trow.className = 'row';
  const tp = def('#/$defs/Trigger').properties;
  const on = field(draft.trigger, 'on', tp.on);
  on.addEventListener('change', () => render()); // a segment trigger offers its segments
  trow.append(on, field(draft.trigger, 'cron', tp.cron), field(draft.trigger, 'object', tp.object));
  // on 'voice': its sentence templates (["call for backup"]) and who may say them
  trow.append(field(draft.trigger, 'phrases', tp.phrases), field(draft.trigger, 'roles', tp.roles));
  draft.trigger.when = draft.trigger.when || [];
  if (String(draft.trigger.on || '').startsWith('segment.')) trow.append(segmentPicker(draft.trigger.when));
  trig.append(trow, conditions(draft.trigger.when));
  const more = document.createElement('div');
  more.className = 'row';
  more.append(field(draft, 'exit_on', top.properties.exit_on), field(draft, 'business_hours', top.properties.business_hours));
  editor.replaceChildren(head, trig, stepList(draft.steps, 'steps'), more);
}

/** The definition as JSON (a copy). @param {any} d */
function clean(d) {
  return JSON.parse(JSON.stringify(d));
}

async function loadList() {
  const body = await api('/workflows?limit=200');
  const items = Array.isArray(body) ? body : body.items;
  list.replaceChildren(
    ...items.map((/** @type {any} */ w) => {
      const b = document.createElement('button');
      b.textContent = `${w.name} · v${w.version} · ${w.active ? 'active' : 'paused'}`;
      b.setAttribute('aria-current', String(w.id === current));
      b.addEventListener('click', () => open(w.id));
      return b;
    }),
  );
}

/** @param {number} id */
async function open(id) {
  const w = await api(`/workflows/${id}`);
  current = id;
  draft = w.definition;
  kind.value = w.kind;
  $('title').textContent = w.name;
  $('version').textContent = `version ${w.version}`;
  render();
  await loadList();
}

/** @param {unknown} e */
const fail = (e) => (errors.textContent = String(e instanceof Error ? e.message : e));

$('new').addEventListener('click', () => {
  current = null;
  draft = { name: 'New workflow', trigger: { on: 'manual' }, steps: [] };
  $('title').textContent = 'New workflow';
  $('version').textContent = '';
  render();
});

$('save').addEventListener('click', async () => {
  try {
    const body = { kind: kind.value, definition: clean(draft) };
    const w = current === null ? await send('/workflows', 'POST', body) : await send(`/workflows/${current}`, 'PUT', body);
    await open(w.id);
    out.textContent = `saved: version ${w.version}`;
  } catch (e) {
    fail(e);
  }
});

for (const action of ['pause', 'activate']) {
  $(action).addEventListener('click', async () => {
    if (current === null) return;
    try {
      await send(`/workflows/${current}/${action}`, 'POST', {});
      await loadList();
    } catch (e) {
      fail(e);
    }
  });
}

$('export').addEventListener('click', async () => {
  if (current === null) return;
  const data = await api(`/workflows/${current}/export`);
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
  a.download = `workflow-${current}.json`;
  a.click();
});

$('import').addEventListener('change', async (ev) => {
  const file = /** @type {HTMLInputElement} */ (ev.target).files?.[0];
  if (!file) return;
  try {
    const w = await send('/workflows/import', 'POST', JSON.parse(await file.text()));
    await open(w.id);
  } catch (e) {
    fail(e);
  }
});

$('dry').addEventListener('click', async () => {
  const obj = /** @type {HTMLSelectElement} */ ($('dry-object')).value;
  const id = Number(/** @type {HTMLInputElement} */ ($('dry-id')).value);
  try {
    const r = await send('/dry-run', 'POST', { definition: clean(draft), record_object: obj, record_id: id });
    out.textContent = JSON.stringify(r, null, 2);
    errors.textContent = '';
  } catch (e) {
    fail(e);
  }
});

async function main() {
  schema = await api('/schema');
  const objects = plain(def('#/$defs/Trigger').properties.object).enum || [];
  /** @type {HTMLSelectElement} */ ($('dry-object')).append(...objects.map((/** @type {string} */ o) => new Option(o, o)));
  draft = { name: 'New workflow', trigger: { on: 'manual' }, steps: [] };
  render();
  await loadList();
}

main().catch(fail);
