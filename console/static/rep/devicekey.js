// @ts-check
// This phone's own signing key (WebCrypto ECDSA P-256): made once, kept in IndexedDB as a
// non-extractable CryptoKey, its public half registered with the phone (phone/routes.py).
// It signs service reports: the server checks the signature and anchors it with the rep's.
const DB = 'fm-rep-key';

/** @returns {Promise<IDBDatabase>} */
function openDb() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore('keys');
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

/** @param {IDBDatabase} db @param {'readonly' | 'readwrite'} mode @param {(s: IDBObjectStore) => IDBRequest} fn */
function op(db, mode, fn) {
  return new Promise((resolve, reject) => {
    const r = fn(db.transaction('keys', mode).objectStore('keys'));
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

/** @param {ArrayBuffer} buf */
export const b64url = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
/** @param {string} s */
export const fromB64url = (s) => /** @type {Uint8Array<ArrayBuffer>} */ (Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), (c) => c.charCodeAt(0)));

/** @returns {Promise<CryptoKeyPair>} */
export async function deviceKey() {
  const db = await openDb();
  let pair = /** @type {CryptoKeyPair | undefined} */ (await op(db, 'readonly', (s) => s.get('device')));
  if (!pair) {
    pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
    await op(db, 'readwrite', (s) => s.put(pair, 'device'));
  }
  return pair;
}

export async function publicKey() {
  return b64url(await crypto.subtle.exportKey('raw', (await deviceKey()).publicKey));
}

/** @param {Uint8Array<ArrayBuffer>} message @returns {Promise<string>} the r||s signature, base64url */
export async function sign(message) {
  return b64url(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, (await deviceKey()).privateKey, message));
}
