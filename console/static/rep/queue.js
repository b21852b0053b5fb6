// @ts-check
// The offline outbox: actions are stored in IndexedDB with a client-generated
// Idempotency-Key, sent in order when online, and removed only once the server has answered.
// A request whose answer was lost is sent again with the same key; the CRM API stores the
// first answer per key and replays it (Idempotent-Replayed), so each action lands once.
const DB = 'fm-rep';
const STORE = 'outbox';

function open() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => {
      const db = r.result;
      db.createObjectStore(STORE, { keyPath: 'seq', autoIncrement: true });
      db.createObjectStore('failed', { keyPath: 'key' });
    };
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

async function tx(store, mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const t = db.transaction(store, mode);
    const out = fn(t.objectStore(store));
    t.oncomplete = () => resolve(out && 'result' in out ? out.result : out);
    t.onerror = () => reject(t.error);
  });
}

export function enqueue(action) {
  const item = { key: crypto.randomUUID(), at: new Date().toISOString(), ...action };
  return tx(STORE, 'readwrite', (s) => s.add(item)).then(() => item);
}
export const pending = () => tx(STORE, 'readonly', (s) => s.getAll());
export const failed = () => tx('failed', 'readonly', (s) => s.getAll());
const remove = (seq) => tx(STORE, 'readwrite', (s) => s.delete(seq));
const fail = (item, error) => tx('failed', 'readwrite', (s) => s.put({ ...item, error }));

// Send everything pending, in order; stop at the first network failure. `send(item)` returns
// 'done' (answered: remove), 'retry' (keep, stop) or throws (network: keep, stop).
export async function flush(send) {
  const run = async () => {
    let sent = 0;
    for (const item of await pending()) {
      let outcome;
      try { outcome = await send(item); } catch { return { sent, stopped: true }; }
      if (outcome === 'retry') return { sent, stopped: true };
      if (outcome !== 'done') await fail(item, String(outcome));
      await remove(item.seq);
      sent += 1;
    }
    return { sent, stopped: false };
  };
  // One tab flushes at a time (the server would deduplicate anyway).
  if (navigator.locks) return navigator.locks.request('fm-outbox', run);
  return run();
}
