// @ts-check
// The live feed (WebSocket /console/live, fed by the gateway's console.live_stage): one
// connection per page, token as the first message, reconnect with capped backoff. While the
// browser is offline it waits for the 'online' event instead of failing connection attempts.
import { token, unauthorized } from './api.js';

/**
 * @param {(msg: any) => void} onMessage every message of the feed but hello and error
 * @param {(state: string, detail?: any) => void} [onState] 'live', 'down' or 'error'
 */
export function connectLive(onMessage, onState = () => {}) {
  let ws = null;
  let closed = false;
  let retry = 500;
  let timer = null;
  const again = () => {
    if (closed) return;
    if (!navigator.onLine) { addEventListener('online', open, { once: true }); return; }
    timer = setTimeout(open, retry);
    retry = Math.min(retry * 2, 10000);
  };
  function open() {
    if (closed) return;
    if (!navigator.onLine) { again(); return; }
    ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/console/live`);
    ws.onopen = () => { ws.send(JSON.stringify({ token: token.get() })); };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.k === 'hello') { retry = 500; onState('live', msg); return; }
      if (msg.k === 'error') { onState('error', msg); return; }
      onMessage(msg);
    };
    ws.onclose = (ev) => {
      // 4401: the server closed the socket because the token was revoked or expired, or
      // the user deactivated: reconnecting with the same token cannot help; the page signs out.
      if (ev.code === 4401) { onState('error', { message: ev.reason || 'signed out' }); if (!closed) unauthorized(); return; }
      onState('down'); again();
    };
  }
  open();
  return () => { closed = true; clearTimeout(timer); removeEventListener('online', open); if (ws) ws.close(); };
}

// Live alert rows ([device, alert_id, alert_type, severity, state, raised_at_ms, message])
// as the objects the alerts API returns.
export const alertFromRow = ([device_id, alert_id, alert_type, severity, state, raisedMs, message]) => ({
  alert_id, device_id, alert_type, severity, state, message, raised_at: new Date(raisedMs).toISOString(),
});
