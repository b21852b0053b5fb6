// @ts-check
// GPS from the phone, as a field device (the rules and why: phone/gps.py).
// Fixes from navigator.geolocation.watchPosition (only while on shift, with the rep's
// consent) go into IndexedDB first; they leave over MQTT (WebSockets, MQTT.js, the phone's
// own broker account) to the phone's `gps` topic, the topic every device uses, and are
// deleted only when the gateway's receipt names their message's seq. While connected a fix
// leaves at once (one message per fix, at most `window` messages awaiting a receipt);
// while offline they wait and leave in sealed batches of up to `max_fixes_per_message`.
// A sealed batch is never changed: a resend after a lost receipt is the same (device, seq).

const DB = 'fm-rep-gps';

/** @typedef {{max_fixes_per_message: number, window: number, receipt_timeout_ms: number, min_move_m: number, still_interval_ms: number, max_buffered_fixes: number, enable_high_accuracy: boolean, maximum_age_ms: number, timeout_ms: number, keepalive_s: number}} GpsPolicy */
/** @typedef {{url: string | null, port: number, client_id: string, username: string, password: string, gps_topic: string, receipt_topic: string, status_topic: string}} MqttConn */
/** @typedef {{device_id: string, mqtt: MqttConn, gps: GpsPolicy}} PhoneConn */
/** @typedef {[number, number, number, number, number | null, number | null]} Fix */
/** @typedef {{seq: number, fixes: Fix[]}} Sealed */

/** @returns {Promise<IDBDatabase>} */
function openDb() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => {
      const db = r.result;
      db.createObjectStore('fixes', { keyPath: 'id', autoIncrement: true });
      db.createObjectStore('outbox', { keyPath: 'seq' });
      db.createObjectStore('meta', { keyPath: 'k' });
    };
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

/**
 * One read-write transaction over `stores`; resolves with fn's result once it commits.
 * @template T
 * @param {IDBDatabase} db @param {string[]} stores
 * @param {(t: IDBTransaction) => Promise<T> | T} fn
 * @returns {Promise<T>}
 */
function txn(db, stores, fn) {
  return new Promise((resolve, reject) => {
    const t = db.transaction(stores, 'readwrite');
    /** @type {T} */
    let out;
    Promise.resolve(fn(t)).then((v) => { out = v; }, (e) => { t.abort(); reject(e); });
    t.oncomplete = () => resolve(out);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error || new Error('aborted'));
  });
}

/** @param {IDBRequest} r @returns {Promise<any>} */
const req = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });

const R = 6371008.8;
/** metres between two [lon, lat] @param {number[]} a @param {number[]} b */
function distanceM(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b[1] - a[1]) * rad; const dLon = (b[0] - a[0]) * rad;
  const s = Math.sin(dLat / 2) ** 2 + Math.cos(a[1] * rad) * Math.cos(b[1] * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(s)));
}

/** @param {number | null | undefined} v @param {number} lo @param {number} hi */
const inRange = (v, lo, hi) => (v === null || v === undefined || !Number.isFinite(v) || v < lo || v > hi ? null : v);

export class Tracker {
  /**
   * @param {PhoneConn} conn
   * @param {(s: {connected: boolean, waiting: number, sent: number, tracking: boolean}) => void} onState
   */
  constructor(conn, onState) {
    this.conn = conn;
    this.policy = conn.gps;
    this.onState = onState;
    /** @type {IDBDatabase | null} */
    this.db = null;
    /** @type {any} */
    this.client = null;
    this.connected = false;
    this.watchId = /** @type {number | null} */ (null);
    /** @type {Map<number, number>} seq -> when it was last published (ms) */
    this.inflight = new Map();
    /** @type {Fix | null} */
    this.lastKept = null;
    this.sent = 0;
    this.pumping = false;
    this.again = false;
    this.timer = /** @type {any} */ (null);
  }

  async start() {
    this.db = await openDb();
    const mod = await import(/** @type {string} */ ('/console/vendor/mqtt/mqtt.esm.js'));
    const mqtt = mod.default || mod;
    const m = this.conn.mqtt;
    const url = m.url || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.hostname}:${m.port}`;
    const now = Date.now();
    this.client = mqtt.connect(url, {
      clientId: m.client_id, username: m.username, password: m.password,
      protocolVersion: 5, clean: true, keepalive: this.policy.keepalive_s, reconnectPeriod: 3000,
      connectTimeout: 10000, manualConnect: !navigator.onLine, timerVariant: 'native', // no blob worker (CSP)
      will: { topic: m.status_topic, payload: JSON.stringify({ v: 1, online: false, t: now }), qos: 1, retain: true },
    });
    this.client.on('connect', () => {
      this.connected = true;
      this.inflight.clear(); // a new connection: anything unreceipted may be sent again
      this.client.subscribe(m.receipt_topic, { qos: 1 });
      this.client.publish(m.status_topic, JSON.stringify({ v: 1, online: true, t: Date.now() }), { qos: 1, retain: true });
      this.pump();
    });
    this.client.on('close', () => { this.connected = false; this.report(); });
    this.client.on('message', (/** @type {string} */ topic, /** @type {Uint8Array} */ payload) => {
      if (topic !== m.receipt_topic) return;
      let seqs = [];
      try { seqs = JSON.parse(new TextDecoder().decode(payload)).seqs || []; } catch { return; }
      this.receipted(seqs.filter((s) => Number.isSafeInteger(s)));
    });
    this.client.on('error', (/** @type {Error} */ e) => console.info('gps link:', e.message));
    // A phone that knows it is offline does not try; back online, it connects and sends.
    this.onOnline = () => { if (!this.client.connected) this.client.connect(); };
    this.onOffline = () => { this.client.end(true); this.connected = false; this.report(); };
    addEventListener('online', this.onOnline);
    addEventListener('offline', this.onOffline);
    this.timer = setInterval(() => this.pump(), 1000);
    this.watchId = navigator.geolocation.watchPosition((p) => { this.addFix(p).catch((e) => console.warn('fix not kept:', e.message)); },
      (e) => console.info('no position:', e.message),
      { enableHighAccuracy: this.policy.enable_high_accuracy, maximumAge: this.policy.maximum_age_ms, timeout: this.policy.timeout_ms });
    this.report();
  }

  stop() {
    if (this.watchId !== null) navigator.geolocation.clearWatch(this.watchId);
    this.watchId = null;
    clearInterval(this.timer);
    removeEventListener('online', this.onOnline);
    removeEventListener('offline', this.onOffline);
    if (this.client) {
      const m = this.conn.mqtt;
      if (this.client.connected) this.client.publish(m.status_topic, JSON.stringify({ v: 1, online: false, t: Date.now() }), { qos: 1, retain: true });
      // what is still waiting stays in IndexedDB for the next shift
      setTimeout(() => this.client.end(), 500);
    }
    this.report(false);
  }

  /** @param {GeolocationPosition} p */
  async addFix(p) {
    const c = p.coords;
    /** @type {Fix} */
    const fix = [Math.round(p.timestamp), Math.round(c.longitude * 1e7) / 1e7, Math.round(c.latitude * 1e7) / 1e7,
      Math.min(Math.max(c.accuracy || 0, 0), 1e6), inRange(c.speed, 0, 1000), inRange(c.heading, 0, 360)];
    const last = this.lastKept;
    if (last && fix[0] <= last[0]) return; // not newer than the last kept fix
    if (last && distanceM(last.slice(1, 3), fix.slice(1, 3)) < this.policy.min_move_m && fix[0] - last[0] < this.policy.still_interval_ms) return;
    this.lastKept = fix;
    await txn(this.db, ['fixes'], async (t) => {
      const s = t.objectStore('fixes');
      s.add({ fix });
      const n = await req(s.count());
      if (n > this.policy.max_buffered_fixes) { // full: the oldest go first
        const keys = await req(s.getAllKeys(null, n - this.policy.max_buffered_fixes));
        for (const k of keys) s.delete(k);
      }
    });
    this.pump();
  }

  /** @param {number[]} seqs */
  async receipted(seqs) {
    await txn(this.db, ['outbox'], (t) => { for (const s of seqs) t.objectStore('outbox').delete(s); });
    for (const s of seqs) this.inflight.delete(s);
    this.sent += seqs.length;
    this.pump();
  }

  // Seal waiting fixes into messages while the window allows, then publish what is due.
  pump() {
    if (this.pumping) { this.again = true; return; }
    this.pumping = true;
    this._pump().catch((e) => console.warn('gps send:', e.message)).finally(() => {
      this.pumping = false;
      if (this.again) { this.again = false; this.pump(); }
    });
  }

  async _pump() {
    if (!this.db) return;
    const P = this.policy;
    /** @type {Sealed[]} */
    let outbox = await txn(this.db, ['outbox'], (t) => req(t.objectStore('outbox').getAll()));
    if (this.connected && outbox.length < P.window) {
      const sealed = await txn(this.db, ['fixes', 'outbox', 'meta'], async (t) => {
        const fixes = t.objectStore('fixes');
        const rows = await req(fixes.getAll(null, P.max_fixes_per_message * (P.window - outbox.length)));
        if (!rows.length) return [];
        const meta = await req(t.objectStore('meta').get('seq'));
        let seq = meta ? meta.v : 0;
        const out = [];
        for (let i = 0; i < rows.length; i += P.max_fixes_per_message) {
          seq = Math.max(seq + 1, Date.now());
          const part = rows.slice(i, i + P.max_fixes_per_message);
          const msg = { seq, fixes: part.map((/** @type {{fix: Fix}} */ r) => r.fix) };
          t.objectStore('outbox').put(msg);
          for (const r of part) fixes.delete(r.id);
          out.push(msg);
        }
        t.objectStore('meta').put({ k: 'seq', v: seq });
        return out;
      });
      outbox = outbox.concat(sealed);
    }
    const now = Date.now();
    if (this.connected) {
      let flying = [...this.inflight.values()].filter((at) => now - at < P.receipt_timeout_ms).length;
      for (const msg of outbox) {
        const at = this.inflight.get(msg.seq);
        if (at !== undefined && now - at < P.receipt_timeout_ms) continue;
        if (flying >= P.window) break;
        this.inflight.set(msg.seq, now);
        flying += 1;
        this.client.publish(this.conn.mqtt.gps_topic, JSON.stringify({ v: 1, seq: msg.seq, fixes: msg.fixes }), { qos: 1 });
      }
    }
    this.report();
  }

  async waiting() {
    if (!this.db) return 0;
    return txn(this.db, ['fixes', 'outbox'], async (t) => {
      const n = await req(t.objectStore('fixes').count());
      const msgs = await req(t.objectStore('outbox').getAll());
      return n + msgs.reduce((a, /** @type {Sealed} */ m) => a + m.fixes.length, 0);
    });
  }

  report(tracking = this.watchId !== null) {
    this.waiting().then((waiting) => this.onState({ connected: this.connected, waiting, sent: this.sent, tracking }))
      .catch(() => undefined);
  }
}
