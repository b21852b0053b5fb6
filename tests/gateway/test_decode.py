"""Decode is total: whatever arrives becomes a message or a rejection, never an exception."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.decode import Decoded, Inbound, Rejected, decode_inbound

NOW_MS = 1_795_000_000_000


def _inb(topic: str, payload: bytes) -> Inbound:
    return Inbound(topic, payload, mid=1, qos=1, received_ns=0)


@given(st.text(max_size=80), st.binary(max_size=300))
def test_any_input_is_decoded_or_rejected(topic: str, payload: bytes) -> None:
    out = decode_inbound(_inb(topic, payload), NOW_MS)
    assert isinstance(out, Decoded | Rejected)


def test_rejection_keeps_device_and_recovers_seq_for_the_receipt() -> None:
    out = decode_inbound(
        _inb("fm/v1/acme/dev/d1/telemetry", b'{"v":1,"seq":9,"samples":"no"}'), NOW_MS
    )
    assert isinstance(out, Rejected)
    assert (out.device_id, out.seq, out.reason) == ("d1", 9, "invalid")


def test_cloud_to_device_kinds_are_not_accepted_from_devices() -> None:
    out = decode_inbound(_inb("fm/v1/acme/dev/d1/receipt", b'{"v":1,"seqs":[1]}'), NOW_MS)
    assert isinstance(out, Rejected) and out.reason == "bad_topic"
