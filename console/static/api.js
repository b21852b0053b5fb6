// @ts-check
// The API client: bearer token in localStorage (see console/routes.py for why), JSON in and
// out, errors as ApiError with the server's {code, message, field}. 401 signs the page out
// (setUnauthorizedHandler); 403/404 are returned to the caller, which shows them without
// breaking the screen.
const TOKEN_KEY = 'fm.token';

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'http_error';
    this.field = e.field || null;
  }
}

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY),
  set: (t) => localStorage.setItem(TOKEN_KEY, t),
  clear: () => localStorage.removeItem(TOKEN_KEY),
};

let onUnauthorized = () => {};
/** What to do when the token no longer works: a request answered 401, the live socket was
 * closed 4401 (revoked by a sign-out elsewhere, or expired), or another tab signed out (it
 * removed the token all tabs share). @param {() => void} fn */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
  addEventListener('storage', (e) => { if ((e.key === TOKEN_KEY || e.key === null) && !token.get()) onUnauthorized(); });
}
/** The token was refused (the live socket's 4401). */
export function unauthorized() { onUnauthorized(); }

/**
 * @typedef {object} ApiOptions
 * @property {string} [method]
 * @property {any} [body] a Blob or string is sent as is, anything else as JSON
 * @property {Record<string, string>} [headers]
 * @property {boolean} [raw] answer the Response itself
 */

/**
 * @param {string} path
 * @param {ApiOptions} [options]
 * @returns {Promise<any>}
 */
export async function api(path, { method = 'GET', body, headers = {}, raw = false } = {}) {
  /** @type {Record<string, string>} */
  const h = { Accept: 'application/json', ...headers };
  const t = token.get();
  if (t) h.Authorization = `Bearer ${t}`;
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && typeof body !== 'string') {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const r = await fetch(path, { method, headers: h, body: payload });
  // a 401 for a token this tab has since replaced (signed in again) says nothing of the new one
  if (r.status === 401 && !path.endsWith('/auth/token') && [null, t].includes(token.get())) onUnauthorized();
  if (raw) return r;
  const text = await r.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = { text }; } }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export async function signIn(email, password) {
  const r = await api('/api/v1/auth/token', { method: 'POST', body: { email, password } });
  token.set(r.token);
  return api('/api/v1/auth/me');
}

export const q = (params) => {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    u.set(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : '';
};

// Every item of a keyset-paginated list, up to `max`.
export async function listAll(path, params = {}, max = 2000) {
  const out = [];
  let cursor;
  do {
    const page = await api(path + q({ ...params, limit: 200, cursor }));
    out.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && out.length < max);
  return out;
}

// The CRM's ETag of a record (crm/store.py etag): updates must send it as If-Match, so a
// concurrent change answers 412 instead of being overwritten.
export const etagOf = (row) => `"${row.id}.${row.version ?? 0}"`;

/**
 * A file download through the API (the bearer token rules out a plain link).
 * @param {string} path
 * @param {any} body POSTed as JSON when given
 * @param {string} name the file's name
 */
export async function download(path, body, name) {
  const r = await api(path, body ? { method: 'POST', body, raw: true } : { raw: true });
  if (!r.ok) {
    let msg = `export failed (HTTP ${r.status})`;
    try { msg = (await r.json()).error.message || msg; } catch { /* not JSON */ }
    throw new Error(msg);
  }
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement('a');
  a.href = url; a.download = name;
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
