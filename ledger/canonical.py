"""Canonical bytes and hashes of field events (RFC 8785 JSON canonicalisation, SHA-256).

Two definitions everything else relies on:

* The **signed message** of a device event is the RFC 8785 canonical JSON of
  ``{"device_id", "id", "t", "type", "data"}`` (exactly these five keys; ``t`` is epoch
  milliseconds UTC as an integer). The device signs those bytes with Ed25519 and sends
  the signature base64url-encoded without padding as ``sig``.
* A **ledger entry** is ``{"v": 1, "source", "source_id", "payload"}``: ``source`` names the
  producer (``device_event``, ``alert``, ``visit_checkin``, ``work_order_completion``...),
  ``source_id`` its id, ``payload`` a JSON object (for a device event: the five signed keys
  plus ``sig``, so the entry binds the device's signature too). The **event hash** is
  SHA-256 of the entry's canonical JSON; the Merkle leaf is ``SHA-256(0x00 || event hash)``.

Anyone holding the entry can recompute its hash with any RFC 8785 implementation.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import rfc8785

from ledger.errors import LedgerInputError

ENTRY_VERSION = 1
DEVICE_EVENT_SOURCE = "device_event"


def canonical_json(value: Any, *, field: str = "value") -> bytes:
    """RFC 8785 bytes of a JSON value; non-JSON input (NaN, bytes, big ints) is refused."""
    _check_json(value, field)
    try:
        return bytes(rfc8785.dumps(value))
    except Exception as exc:  # rfc8785 raises its own error types per case
        raise LedgerInputError(f"{field}: cannot canonicalise as JSON: {exc}") from exc


def _check_json(value: Any, path: str) -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if abs(value) > 2**53 - 1:
            raise LedgerInputError(f"{path}: integer {value} is beyond the I-JSON range (2^53-1)")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LedgerInputError(f"{path}: {value} is not a finite number")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise LedgerInputError(f"{path}: object key {key!r} is not a string")
            _check_json(item, f"{path}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]")
        return
    raise LedgerInputError(f"{path}: {type(value).__name__} is not a JSON value")


def signed_message(
    device_id: str, event_id: str, t_ms: int, type: str, data: Mapping[str, Any]
) -> bytes:
    """The exact bytes a device signs for one event."""
    if not isinstance(device_id, str) or not device_id:
        raise LedgerInputError("device_id: must be a non-empty string")
    if not isinstance(event_id, str) or not event_id:
        raise LedgerInputError("id: must be a non-empty string")
    if isinstance(t_ms, bool) or not isinstance(t_ms, int) or t_ms < 0:
        raise LedgerInputError(
            f"t: must be a non-negative integer of epoch milliseconds, got {t_ms!r}"
        )
    if not isinstance(type, str) or not type:
        raise LedgerInputError("type: must be a non-empty string")
    if not isinstance(data, Mapping):
        raise LedgerInputError("data: must be a JSON object")
    return canonical_json(
        {"device_id": device_id, "id": event_id, "t": t_ms, "type": type, "data": dict(data)},
        field="event",
    )


def device_event_payload(
    device_id: str, event_id: str, t_ms: int, type: str, data: Mapping[str, Any], sig: str | None
) -> dict[str, Any]:
    """The ledger payload of a device event: the signed fields plus the signature."""
    return {
        "device_id": device_id,
        "id": event_id,
        "t": t_ms,
        "type": type,
        "data": dict(data),
        "sig": sig,
    }


def entry_document(source: str, source_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(source, str) or not source:
        raise LedgerInputError("source: must be a non-empty string")
    if not isinstance(source_id, str) or not source_id:
        raise LedgerInputError("source_id: must be a non-empty string")
    if not isinstance(payload, Mapping):
        raise LedgerInputError("payload: must be a JSON object")
    return {"v": ENTRY_VERSION, "source": source, "source_id": source_id, "payload": dict(payload)}


def entry_bytes(source: str, source_id: str, payload: Mapping[str, Any]) -> bytes:
    return canonical_json(entry_document(source, source_id, payload), field="payload")


def event_hash(source: str, source_id: str, payload: Mapping[str, Any]) -> bytes:
    """SHA-256 of the canonical ledger entry: what the Merkle tree commits to."""
    return hashlib.sha256(entry_bytes(source, source_id, payload)).digest()
