"""Decode is total: every inbound message becomes a Decoded message or a Rejected one.

Nothing here raises on device input; a Rejected message is stored whole as a dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telemetry.contracts import ContractError, Kind, Topic, decode, probe

DEVICE_KINDS = frozenset({Kind.TELEMETRY, Kind.GPS, Kind.EVENT, Kind.STATUS, Kind.ACK})


@dataclass(frozen=True, slots=True)
class Inbound:
    """One MQTT message as received, before any parsing."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_ns: int


@dataclass(frozen=True, slots=True)
class Decoded:
    inbound: Inbound
    topic: Topic
    msg: Any  # one of the telemetry.contracts payload structs, per topic.kind

    @property
    def device_id(self) -> str:
        return self.topic.device_id

    @property
    def seq(self) -> int | None:
        return getattr(self.msg, "seq", None)


@dataclass(frozen=True, slots=True)
class Rejected:
    inbound: Inbound
    topic: Topic | None
    reason: str
    detail: str
    seq: int | None  # when recoverable, so the device still gets a receipt and stops resending

    @property
    def device_id(self) -> str | None:
        return None if self.topic is None else self.topic.device_id


def _probe_seq(payload: bytes) -> int | None:
    obj = probe(payload)  # depth-checked before parsing: any payload is safe here
    seq = None if obj is None else obj.get("seq")
    ok = isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < 2**63
    return seq if ok else None


def decode_inbound(inb: Inbound, now_ms: int) -> Decoded | Rejected:
    try:
        topic = Topic.parse(inb.topic)
    except ContractError as exc:
        return Rejected(inb, None, exc.reason, exc.message, None)
    if topic.kind not in DEVICE_KINDS:
        return Rejected(
            inb, topic, "bad_topic", f"{topic.kind} is not a device-to-cloud kind", None
        )
    try:
        msg = decode(topic.kind, inb.payload, now_ms)
    except ContractError as exc:
        seq = _probe_seq(inb.payload)  # bounded: probe checks size and depth first
        return Rejected(inb, topic, exc.reason, exc.message[:2000], seq)
    return Decoded(inb, topic, msg)
