"""Secrets of enrolment, pure: one-time tokens, possession proofs, signed download links.

- An enrolment token is 32 random bytes (``fmenr_`` + base64url); only its SHA-256 is
  stored, so a database leak yields no usable token.
- A device proves it holds its Ed25519 key by signing ``edge_agent.enrol.enrolment_message``
  (its id and the token): a proof is bound to one device and one token.
- A firmware download link carries an HMAC over (image, device, expiry) under a key
  derived from the deployment's master key: the device needs no API login, and a link is
  good for one device and a limited time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.enrol import enrolment_message
from ledger.verify import b64url_decode

TOKEN_PREFIX = "fmenr_"
TOKEN_PATTERN = r"^fmenr_[A-Za-z0-9_-]{43}$"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def decode_public_key(text: str) -> bytes:
    """32 raw bytes of an Ed25519 public key in base64url; ValueError otherwise."""
    raw = b64url_decode(text)
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
    Ed25519PublicKey.from_public_bytes(raw)
    return raw


def proof_ok(public_key: bytes, device_id: str, token: str, proof: str) -> bool:
    """Whether `proof` is the key's signature over the device's enrolment message."""
    try:
        sig = b64url_decode(proof)
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            sig, enrolment_message(device_id, token)
        )
    except (ValueError, InvalidSignature):
        return False
    return True


def _link_mac(key: bytes, sha256: str, device_id: str, expires: int) -> str:
    msg = f"fw\x00{sha256}\x00{device_id}\x00{expires}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def link_key(master_key: bytes) -> bytes:
    return hmac.new(master_key, b"fieldmesh firmware download links", hashlib.sha256).digest()


def sign_link(key: bytes, sha256: str, device_id: str, expires: int) -> str:
    return _link_mac(key, sha256, device_id, expires)


def link_ok(key: bytes, sha256: str, device_id: str, expires: int, mac: str, now_s: float) -> bool:
    if expires < now_s:
        return False
    return hmac.compare_digest(_link_mac(key, sha256, device_id, expires), mac)
