"""Device signing (edge_agent.signing) and the gateway's verification path (ledger.verify)."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

from edge_agent.signing import DeviceKey
from ledger.canonical import signed_message
from ledger.verify import b64url_encode, verify_event

T_MS = 1_764_000_000_123
DATA = {"account": "acc-42", "lon": 4.35, "lat": 50.85, "note": "café"}


def _signed(key: DeviceKey) -> tuple[str, str]:
    event_id = str(uuid.uuid4())
    return event_id, key.sign(event_id, T_MS, "visit.checkin", DATA)


def test_signed_event_verifies_with_the_registered_key() -> None:
    key = DeviceKey.generate("dev-1")
    event_id, sig = _signed(key)
    assert verify_event(
        key.public_key_bytes, "dev-1", event_id, T_MS, "visit.checkin", DATA, sig
    ).verified


def test_signed_message_is_rfc8785_canonical_json_of_five_keys() -> None:
    msg = signed_message("d", "e", 5, "x.y", {"b": 1.0, "a": [True, None]})
    assert msg == b'{"data":{"a":[true,null],"b":1},"device_id":"d","id":"e","t":5,"type":"x.y"}'


def test_tampered_fields_fail_with_bad_signature() -> None:
    key = DeviceKey.generate("dev-1")
    event_id, sig = _signed(key)
    pk = key.public_key_bytes
    cases = [
        ("dev-2", event_id, T_MS, "visit.checkin", DATA),
        ("dev-1", str(uuid.uuid4()), T_MS, "visit.checkin", DATA),
        ("dev-1", event_id, T_MS + 1, "visit.checkin", DATA),
        ("dev-1", event_id, T_MS, "visit.checkout", DATA),
        ("dev-1", event_id, T_MS, "visit.checkin", {**DATA, "lat": 50.86}),
    ]
    for device_id, eid, t, typ, data in cases:
        result = verify_event(pk, device_id, eid, t, typ, data, sig)
        assert not result.verified
        assert result.reason is not None and result.reason.startswith("bad_signature")


def test_unsigned_and_keyless_events_are_unverified_with_reasons() -> None:
    key = DeviceKey.generate("dev-1")
    event_id, sig = _signed(key)
    unsigned = verify_event(
        key.public_key_bytes, "dev-1", event_id, T_MS, "visit.checkin", DATA, None
    )
    assert (
        not unsigned.verified
        and unsigned.reason is not None
        and unsigned.reason.startswith("unsigned")
    )
    keyless = verify_event(None, "dev-1", event_id, T_MS, "visit.checkin", DATA, sig)
    assert (
        not keyless.verified
        and keyless.reason is not None
        and keyless.reason.startswith("no_public_key")
    )


def test_another_devices_key_does_not_verify() -> None:
    key, other = DeviceKey.generate("dev-1"), DeviceKey.generate("dev-1")
    event_id, sig = _signed(key)
    assert not verify_event(
        other.public_key_bytes, "dev-1", event_id, T_MS, "visit.checkin", DATA, sig
    ).verified


def test_malformed_signatures_and_keys_get_clear_reasons() -> None:
    key = DeviceKey.generate("dev-1")
    event_id, _ = _signed(key)
    pk = key.public_key_bytes
    r = verify_event(pk, "dev-1", event_id, T_MS, "visit.checkin", DATA, "not base64!")
    assert r.reason is not None and r.reason.startswith("bad_signature_encoding")
    r = verify_event(
        pk, "dev-1", event_id, T_MS, "visit.checkin", DATA, b64url_encode(b"\x00" * 10)
    )
    assert r.reason is not None and r.reason.startswith("bad_signature_encoding")
    r = verify_event(
        pk[:16], "dev-1", event_id, T_MS, "visit.checkin", DATA, b64url_encode(b"\x00" * 64)
    )
    assert r.reason is not None and r.reason.startswith("bad_public_key")
    r = verify_event(
        pk,
        "dev-1",
        event_id,
        T_MS,
        "visit.checkin",
        {"x": float("nan")},
        b64url_encode(b"\x00" * 64),
    )
    assert r.reason is not None and r.reason.startswith("bad_event")


def test_padded_base64url_signature_is_accepted() -> None:
    key = DeviceKey.generate("dev-1")
    event_id, sig = _signed(key)
    padded = sig + "=" * (-len(sig) % 4)
    assert verify_event(
        key.public_key_bytes, "dev-1", event_id, T_MS, "visit.checkin", DATA, padded
    ).verified


def test_key_file_round_trips_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "dev-1.key"
    key = DeviceKey.load_or_create("dev-1", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = DeviceKey.load_or_create("dev-1", path)
    assert again.public_key_bytes == key.public_key_bytes
    event = again.signed_event("e-1", T_MS, "alarm.raised", {"level": 3})
    assert verify_event(
        key.public_key_bytes, "dev-1", "e-1", T_MS, "alarm.raised", {"level": 3}, event["sig"]
    ).verified
