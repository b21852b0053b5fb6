"""Signed documents in the ledger (a service report, ...): the entry's payload names the
document's SHA-256 and carries signatures over it, so whoever holds the document and its
receipt can check, with `fieldmesh verify RECEIPT --document FILE`, that this exact file
was anchored and signed -- one changed byte and the hash no longer matches.

Payload fields: `document_sha256` (hex), `document_id`, `signatures`: a list of
`{"by", "alg", "public_key", "sig"}` (base64url), each over `message(payload)`:
`fieldmesh-document:v1:<document_id>:<document_sha256>` in UTF-8. Algorithms: `Ed25519`
(raw 32-byte keys) and `ES256` (P-256, raw uncompressed public point, IEEE P1363 r||s
signature: what WebCrypto produces on a phone).
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ledger.receipt import Verdict
from ledger.verify import b64url_decode

DOCUMENT_PREFIX = "fieldmesh-document:v1"


def message(document_id: str, document_sha256: str) -> bytes:
    return f"{DOCUMENT_PREFIX}:{document_id}:{document_sha256}".encode()


def verify_signature(alg: str, public_key: bytes, sig: bytes, msg: bytes) -> bool:
    try:
        if alg == "Ed25519":
            Ed25519PublicKey.from_public_bytes(public_key).verify(sig, msg)
            return True
        if alg == "ES256":
            if len(sig) != 64:
                return False
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
            der = encode_dss_signature(
                int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
            )
            key.verify(der, msg, ec.ECDSA(hashes.SHA256()))
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def is_document_entry(entry: dict[str, Any]) -> bool:
    p = entry.get("payload")
    return isinstance(p, dict) and "document_sha256" in p


def check_signatures(entry: dict[str, Any]) -> Verdict:
    p = entry.get("payload")
    if not isinstance(p, dict):
        return Verdict(False, "tampered_event", "the entry has no payload object")
    sha, doc_id = p.get("document_sha256"), p.get("document_id")
    sigs = p.get("signatures")
    if (
        not isinstance(sha, str)
        or not isinstance(doc_id, str)
        or not isinstance(sigs, list)
        or not sigs
    ):
        return Verdict(False, "bad_document_signature", "no document hash, id or signatures")
    msg = message(doc_id, sha)
    signers = []
    for s in sigs:
        if not isinstance(s, dict):
            return Verdict(False, "bad_document_signature", "a signature is not an object")
        try:
            key = b64url_decode(str(s.get("public_key", "")))
            sig = b64url_decode(str(s.get("sig", "")))
        except ValueError:
            return Verdict(False, "bad_document_signature", "a key or signature is not base64url")
        if not verify_signature(str(s.get("alg")), key, sig, msg):
            return Verdict(
                False,
                "bad_document_signature",
                f"the {s.get('by')!s:.40} signature does not verify",
            )
        signers.append(str(s.get("by")))
    return Verdict(
        True, "signatures_valid", f"signed by {', '.join(signers)}", {"signers": signers}
    )


def check_document(entry: dict[str, Any], data: bytes) -> Verdict:
    """The file is the one the entry names, and the entry's signatures verify."""
    raw = entry.get("payload")
    p: dict[str, Any] = raw if isinstance(raw, dict) else {}
    digest = hashlib.sha256(data).hexdigest()
    if digest != p.get("document_sha256"):
        return Verdict(
            False,
            "document_mismatch",
            f"the file hashes to {digest}, the anchored entry names {p.get('document_sha256')}",
        )
    return check_signatures(entry)
