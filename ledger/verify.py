"""Signature verification of device events, as the gateway calls it for every event.

Pure: no I/O. ``verify_event`` never raises on bad input; it returns a verdict with a
reason code the gateway stores in ``device_event.verify_reason``. Only verified events
enter the ledger.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.canonical import signed_message
from ledger.errors import LedgerInputError

ED25519_PUBLIC_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """``verified`` and, when not, a short reason code followed by a human explanation."""

    verified: bool
    reason: str | None = None


OK = VerifyResult(True, None)


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises ValueError on anything else."""
    if not isinstance(text, str) or not text:
        raise ValueError("empty")
    stripped = text.rstrip("=")
    if any(c not in _B64URL_ALPHABET for c in stripped):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from exc


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


_B64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@functools.lru_cache(maxsize=4096)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_event(
    public_key: bytes | None,
    device_id: str,
    event_id: str,
    t_ms: int,
    type: str,
    data: dict[str, Any],
    sig: str | None,
) -> VerifyResult:
    """Check a device event's Ed25519 signature over its canonical signed message."""
    if sig is None or sig == "":
        return VerifyResult(False, "unsigned: the event carries no signature")
    if public_key is None:
        return VerifyResult(False, f"no_public_key: device {device_id!r} has no registered key")
    if len(public_key) != ED25519_PUBLIC_KEY_BYTES:
        return VerifyResult(
            False, f"bad_public_key: {len(public_key)} bytes, expected {ED25519_PUBLIC_KEY_BYTES}"
        )
    try:
        raw_sig = b64url_decode(sig)
    except ValueError:
        return VerifyResult(False, "bad_signature_encoding: sig is not base64url")
    if len(raw_sig) != ED25519_SIGNATURE_BYTES:
        return VerifyResult(
            False,
            f"bad_signature_encoding: {len(raw_sig)} bytes, expected {ED25519_SIGNATURE_BYTES}",
        )
    try:
        message = signed_message(device_id, event_id, t_ms, type, data)
    except LedgerInputError as exc:
        return VerifyResult(False, f"bad_event: {exc}")
    try:
        key = _public_key(bytes(public_key))
    except ValueError:
        return VerifyResult(False, "bad_public_key: not an Ed25519 public key")
    try:
        key.verify(raw_sig, message)
    except InvalidSignature:
        return VerifyResult(False, "bad_signature: signature does not match the event and key")
    return OK
