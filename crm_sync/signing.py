"""Webhook signatures: HMAC-SHA256 over the timestamp and the body (pure).

Header `Fieldmesh-Signature: t=<unix seconds>,v1=<hex hmac>`, where the HMAC key is the
subscriber's secret and the message is `<t>.<raw body bytes>`. A receiver recomputes it,
compares in constant time and refuses timestamps outside its tolerance (replay defence).
"""

from __future__ import annotations

import hashlib
import hmac

from crm_sync.errors import BadSignature

HEADER = "Fieldmesh-Signature"
DEFAULT_TOLERANCE_S = 300


def sign(secret: bytes, timestamp_s: int, body: bytes) -> str:
    mac = hmac.new(secret, f"{timestamp_s}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp_s},v1={mac}"


def verify(
    secret: bytes,
    header: str | None,
    body: bytes,
    now_s: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> int:
    """Check a signature header; the signed timestamp, or BadSignature saying why."""
    if not header:
        raise BadSignature(f"missing {HEADER} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(value)
    try:
        ts = int(parts["t"][0])
    except (KeyError, ValueError):
        raise BadSignature("signature header has no valid t=<unix seconds>") from None
    if abs(now_s - ts) > tolerance_s:
        raise BadSignature(f"signature timestamp {ts} is outside the {tolerance_s:g} s tolerance")
    expected = sign(secret, ts, body).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
        raise BadSignature("signature does not match the body")
    return ts
