// @ts-check
// The public verification page: hash the dropped file in the browser (WebCrypto), fetch
// the receipt of that hash, check its Merkle inclusion path here (RFC 6962 / RFC 9162
// 2.1.3.2, the same algorithm as ledger/merkle.py), and show the server's check of the
// signatures and of the chain anchor. The receipt can be downloaded for `fieldmesh verify`.
export {};

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const HEX64 = /^[0-9a-f]{64}$/;

/** @param {ArrayBuffer | Uint8Array} buf */
function hex(buf) {
  return [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** @param {string} text */
function unhex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** @param {Uint8Array[]} parts */
async function sha256(...parts) {
  const size = parts.reduce((n, p) => n + p.length, 0);
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.length; }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', all));
}

/**
 * The root an inclusion proof implies, or null if the proof is malformed.
 * @param {number} index @param {number} size @param {Uint8Array} leaf @param {Uint8Array[]} path
 */
async function rootFromInclusion(index, size, leaf, path) {
  if (!(index >= 0 && index < size)) return null;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  const node = new Uint8Array([1]);
  for (const p of path) {
    if (p.length !== 32 || sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(node, p, r);
      if (fn % 2 === 0) {
        while (fn !== 0 && fn % 2 === 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      }
    } else {
      r = await sha256(node, r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

/** @param {string} cls @param {string} text */
function step(cls, text) {
  const li = document.createElement('li');
  li.className = cls;
  li.textContent = text;
  $('steps').append(li);
}

/** @param {string} cls @param {string} text */
function headline(cls, text) {
  const h = $('headline');
  h.className = cls;
  h.textContent = text;
}

/** @param {string} sha @param {boolean} fromFile */
async function check(sha, fromFile) {
  $('result').hidden = false;
  $('offline').hidden = true;
  $('steps').replaceChildren();
  headline('wait', 'Checking…');
  step('ok', `${fromFile ? 'Fingerprint computed in your browser' : 'Fingerprint'}: ${sha}`);
  let res;
  try {
    res = await fetch(`/api/v1/public/documents/${sha}`, { headers: { Accept: 'application/json' } });
  } catch {
    headline('bad', 'The verification service cannot be reached. Try again later.');
    return;
  }
  const body = await res.json().catch(() => ({}));
  if (res.status === 404) {
    headline('bad', 'Not verified: no signed document has this fingerprint.');
    step('bad', fromFile
      ? 'This file is not a signed report, or it was changed after signing (one changed byte changes the fingerprint).'
      : 'Check the fingerprint, or drop the PDF itself.');
    return;
  }
  if (res.status === 409) {
    headline('wait', 'Signed, not yet anchored: try again in a minute.');
    step('wait', body?.error?.message || 'The anchor transaction is pending.');
    return;
  }
  if (!res.ok) {
    headline('bad', `The check failed (${res.status}): ${body?.error?.message || 'unexpected answer'}`);
    return;
  }
  const receipt = body.receipt;
  const named = receipt?.entry?.payload?.document_sha256;
  step(named === sha ? 'ok' : 'bad', named === sha
    ? `Found: ${body.document_id}, signed ${body.signed_at ? new Date(body.signed_at).toLocaleString() : ''}`
    : 'The receipt names another fingerprint.');
  const leaf = await sha256(new Uint8Array([0]), unhex(receipt.event_hash));
  const root = await rootFromInclusion(
    receipt.leaf_index, receipt.tree_size, leaf, receipt.inclusion_path.map(unhex),
  );
  const pathOk = root !== null && hex(root) === receipt.root;
  step(pathOk ? 'ok' : 'bad', pathOk
    ? `Inclusion proof checked in your browser: entry ${receipt.leaf_index + 1} of ${receipt.tree_size} leads to root ${receipt.root}`
    : 'The inclusion proof does not lead to the anchored root.');
  const v = body.verdict;
  step(v.ok ? 'ok' : 'bad', `${v.ok ? 'Signatures and anchor' : 'Server check failed'}: ${v.message}`);
  if (body.signers?.length) step('ok', `Signed by ${body.signers.join(', ')}`);
  if (receipt.tx_hash) step('ok', `Anchor transaction ${receipt.tx_hash} (chain ${receipt.chain_id}, block ${receipt.block_number})`);
  if (!v.chain_checked) step('wait', 'This server has no chain node configured: check the anchor yourself with the command below.');
  const good = v.ok && pathOk && named === sha;
  headline(good ? 'ok' : 'bad', good
    ? (fromFile ? 'Verified: this file is the signed, anchored report.' : 'Verified: this fingerprint is a signed, anchored report. Drop the PDF to check your copy.')
    : 'Not verified.');
  $('command').textContent = body.verify_command;
  const blob = new Blob([JSON.stringify(receipt, null, 2)], { type: 'application/json' });
  /** @type {HTMLAnchorElement} */ ($('download')).href = URL.createObjectURL(blob);
  $('offline').hidden = false;
}

/** @param {File} file */
async function checkFile(file) {
  if (file.size > 64 * 1024 * 1024) {
    $('result').hidden = false;
    $('steps').replaceChildren();
    headline('bad', 'This file is larger than any service report (64 MB at most).');
    return;
  }
  const sha = hex(await crypto.subtle.digest('SHA-256', await file.arrayBuffer()));
  /** @type {HTMLInputElement} */ ($('sha')).value = sha;
  await check(sha, true);
}

const fileInput = /** @type {HTMLInputElement} */ ($('file'));
fileInput.addEventListener('change', () => { if (fileInput.files?.[0]) void checkFile(fileInput.files[0]); });
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const f = e.dataTransfer?.files?.[0];
  if (f) void checkFile(f);
});
$('pick').addEventListener('submit', (e) => {
  e.preventDefault();
  const sha = /** @type {HTMLInputElement} */ ($('sha')).value.trim().toLowerCase();
  if (!HEX64.test(sha)) {
    $('result').hidden = false;
    $('steps').replaceChildren();
    headline('bad', 'A fingerprint is 64 hexadecimal characters (0-9, a-f).');
    return;
  }
  void check(sha, false);
});
const fromLink = new URLSearchParams(location.hash.slice(1)).get('sha256');
if (fromLink && HEX64.test(fromLink)) {
  /** @type {HTMLInputElement} */ ($('sha')).value = fromLink;
  void check(fromLink, false);
}
