// @ts-check
// fieldmesh web chat widget: <script src="https://HOST/engage/chat/widget.js" defer></script>
// Opens a small chat box; messages go over a WebSocket to fieldmesh and land in the inbox.
// The visitor may give an e-mail address (then the conversation joins their contact's).
// The browser's time zone goes with the hello, so that times offered are said in it.
// Replies are labelled with who wrote them: the assistant's name marked "(bot)", or the
// agent's name after a handover.
(function () {
  'use strict';
  const script = /** @type {HTMLScriptElement | null} */ (document.currentScript);
  const origin = script ? new URL(script.src).origin : location.origin;
  const wsUrl = origin.replace(/^http/, 'ws') + '/engage/chat/socket';
  const KEY = 'fieldmesh-chat-visitor';
  /** @type {string | null} */
  let zone = null;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || null;
  } catch {
    zone = null;
  }

  const box = document.createElement('div');
  box.setAttribute('role', 'complementary');
  box.setAttribute('aria-label', 'Chat');
  box.style.cssText =
    'position:fixed;right:16px;bottom:16px;width:300px;font:14px sans-serif;' +
    'background:#fff;border:1px solid #ccc;border-radius:8px;box-shadow:0 2px 8px #0003;z-index:99999';
  const log = document.createElement('div');
  log.style.cssText = 'height:220px;overflow:auto;padding:8px';
  log.setAttribute('aria-live', 'polite');
  const email = document.createElement('input');
  email.type = 'email';
  email.placeholder = 'Your e-mail (optional)';
  email.setAttribute('aria-label', 'Your e-mail');
  const text = document.createElement('input');
  text.placeholder = 'Type a message';
  text.setAttribute('aria-label', 'Message');
  text.maxLength = 4000;
  for (const el of [email, text]) el.style.cssText = 'width:calc(100% - 16px);margin:4px 8px;padding:4px';
  box.append(log, email, text);

  /** @param {string} who @param {string} body */
  function show(who, body) {
    const p = document.createElement('p');
    p.style.margin = '4px 0';
    const b = document.createElement('b');
    b.textContent = who + ': ';
    p.append(b, document.createTextNode(body));
    log.append(p);
    log.scrollTop = log.scrollHeight;
  }

  /** @type {WebSocket | null} */
  let ws = null;
  let counter = 0;

  function connect() {
    const sock = new WebSocket(wsUrl);
    ws = sock;
    sock.addEventListener('open', () => {
      sock.send(JSON.stringify({ t: 'hello', visitor: localStorage.getItem(KEY), email: usable() ? email.value.trim() : null, tz: zone }));
    });
    sock.addEventListener('message', (ev) => {
      const msg = JSON.parse(String(ev.data));
      if (msg.t === 'welcome') localStorage.setItem(KEY, msg.visitor);
      else if (msg.t === 'msg') show(msg.from === 'bot' ? `${msg.name || 'Assistant'} (bot)` : msg.name || 'Agent', msg.text);
      else if (msg.t === 'error') show('!', msg.reason);
    });
    sock.addEventListener('close', (ev) => {
      if (ws !== sock) return; // a socket closed for a new one (the e-mail changed)
      ws = null;
      // the server refuses an address it cannot read (4400 "bad email"): said, and the
      // chat goes on without it (it reconnected with it again and again, in silence)
      if (ev.code === 4400 && ev.reason === 'bad email') {
        refused = email.value;
        badEmail();
        connect();
      }
    });
  }

  /** The address the visitor typed, when there is one that may be sent. */
  let refused = '';
  const usable = () => !!email.value.trim() && email.checkValidity() && email.value !== refused;
  function badEmail() {
    email.setAttribute('aria-invalid', 'true');
    show('!', 'That e-mail address looks wrong and is not used: correct it, or chat without it.');
  }

  email.addEventListener('change', () => {
    email.removeAttribute('aria-invalid');
    if (email.value.trim() && !usable()) badEmail();
    ws?.close();
    connect();
  });
  text.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter' || !text.value.trim()) return;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      show('!', 'reconnecting, try again');
      connect();
      return;
    }
    counter += 1;
    ws.send(JSON.stringify({ t: 'msg', id: Date.now().toString(36) + '-' + counter, text: text.value.trim() }));
    show('You', text.value.trim());
    text.value = '';
  });

  document.body.append(box);
  connect();
})();
