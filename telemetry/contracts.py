"""The MQTT wire contract, version 1: topics and payload schemas in one place.

Topics (one tenant per deployment prefix):

    fm/v1/{tenant}/dev/{device_id}/telemetry   TelemetryBatch   device -> cloud, QoS 1
    fm/v1/{tenant}/dev/{device_id}/gps         GpsBatch         device -> cloud, QoS 1
    fm/v1/{tenant}/dev/{device_id}/event       EventBatch       device -> cloud, QoS 1
    fm/v1/{tenant}/dev/{device_id}/status      Status           retained; also the last will
    fm/v1/{tenant}/dev/{device_id}/cmd/{name}  Command          cloud -> device (config, ota, ping, reboot)
    fm/v1/{tenant}/dev/{device_id}/ack/{name}  CommandAck       device -> cloud
    fm/v1/{tenant}/dev/{device_id}/receipt     Receipt          cloud -> device: seqs durably stored

Every device -> cloud message except status carries the device's monotonic `seq`;
`(device_id, seq)` is the idempotency key into the database. Times on the wire are epoch
milliseconds, UTC. Payloads are JSON objects with `"v": 1`; samples and fixes are compact
arrays to keep the gateway's per-message work small.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from kernel.jsonlimits import MAX_DEPTH, check_depth, text_problem

SCHEMA_VERSION = 1
TOPIC_ROOT = "fm/v1"
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_ITEMS_PER_BATCH = 10_000
MAX_FUTURE_SKEW_MS = 5 * 60 * 1000  # device clocks may run a little ahead, not more
MIN_TIME_MS = 946_684_800_000  # 2000-01-01: anything older is a clock that was never set

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)
# A device id (also a tenant) as an API type: the same rule as on the wire.
DeviceId = Annotated[str, msgspec.Meta(pattern=ID_PATTERN, description="a device id")]
_METRIC_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# Limits on what a device may send (README, "Telemetry"). Each refusal names its JSON path.
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
EVENT_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")
SIG_RE = re.compile(r"^[A-Za-z0-9_+/=-]{1,256}$")
MAX_FW_CHARS = 64
MAX_ACK_ID_CHARS = 128
MAX_ACK_DETAIL_CHARS = 2000
MAX_EVENT_DATA_BYTES = 16 * 1024  # encoded JSON of one event's data
MAX_EVENT_DATA_DEPTH = 8  # nesting inside one event's data
MAX_DATA_STRING_CHARS = 4096
MAX_DATA_INT = 2**63  # jsonb takes any numeric; the consumers read int64
MAX_ACCURACY_M = 1e6
MAX_SPEED_MPS = 1000.0  # faster than anything in the field; also keeps float4 finite
# Raw-document depth limits before parsing, per kind whose schema reaches arbitrary JSON:
# an event batch is {events: [{data: ...}]}, three levels above the data.
_DEPTH_LIMITS: dict[Kind, int] = {}


class ContractError(ValueError):
    """A topic or payload breaks the contract; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class Kind(StrEnum):
    TELEMETRY = "telemetry"
    GPS = "gps"
    EVENT = "event"
    STATUS = "status"
    CMD = "cmd"
    ACK = "ack"
    RECEIPT = "receipt"


_NAMED_KINDS = {Kind.CMD, Kind.ACK}
_DEPTH_LIMITS.update(
    {Kind.EVENT: 3 + MAX_EVENT_DATA_DEPTH, Kind.STATUS: 4, Kind.ACK: 4, Kind.CMD: MAX_DEPTH}
)


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed, validated topic; `str(topic)` gives it back."""

    tenant: str
    device_id: str
    kind: Kind
    name: str | None = None

    def __post_init__(self) -> None:
        for label, value in (("tenant", self.tenant), ("device_id", self.device_id)):
            if not _ID_RE.match(value):
                raise ContractError("bad_topic", f"invalid {label} {value!r}")
        if (self.kind in _NAMED_KINDS) != (self.name is not None):
            raise ContractError(
                "bad_topic",
                f"{self.kind} topics {'need' if self.kind in _NAMED_KINDS else 'take no'} a name",
            )
        if self.name is not None and not _METRIC_RE.match(self.name):
            raise ContractError("bad_topic", f"invalid command name {self.name!r}")

    def __str__(self) -> str:
        base = f"{TOPIC_ROOT}/{self.tenant}/dev/{self.device_id}/{self.kind.value}"
        return base if self.name is None else f"{base}/{self.name}"

    @classmethod
    def parse(cls, topic: str) -> Topic:
        parts = topic.split("/")
        if len(parts) not in (6, 7) or parts[0] != "fm" or parts[1] != "v1" or parts[3] != "dev":
            raise ContractError("bad_topic", f"not a fieldmesh v1 device topic: {topic[:200]!r}")
        try:
            kind = Kind(parts[5])
        except ValueError:
            raise ContractError("bad_topic", f"unknown message kind {parts[5][:40]!r}") from None
        name = parts[6] if len(parts) == 7 else None
        return cls(tenant=parts[2], device_id=parts[4], kind=kind, name=name)


def device_filter(tenant: str | None, kind: Kind, name: str | None = None) -> str:
    """A subscription filter for one kind across devices (and tenants when tenant is None)."""
    t = "+" if tenant is None else tenant
    base = f"{TOPIC_ROOT}/{t}/dev/+/{kind.value}"
    if kind in _NAMED_KINDS:
        return f"{base}/{name or '+'}"
    return base


# ----------------------------------------------------------------------------- payloads


class Sample(msgspec.Struct, array_like=True, frozen=True):
    """One reading: [t_ms, metric, value]."""

    t_ms: int
    metric: str
    value: float


class TelemetryBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    v: int
    seq: int
    samples: list[Sample]


class Fix(msgspec.Struct, array_like=True, frozen=True):
    """One GPS fix: [t_ms, lon, lat, accuracy_m, speed_mps|null, heading_deg|null]."""

    t_ms: int
    lon: float
    lat: float
    accuracy_m: float
    speed_mps: float | None = None
    heading_deg: float | None = None


class GpsBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    v: int
    seq: int
    fixes: list[Fix]


class FieldEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An event the device originates; `sig` is its Ed25519 signature (see ledger.verify)."""

    id: str
    t: int
    type: str
    data: dict[str, Any]
    sig: str | None = None


class EventBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    v: int
    seq: int
    events: list[FieldEvent]


class Status(msgspec.Struct, frozen=True):
    v: int
    online: bool
    t: int
    fw: str | None = None


class Command(msgspec.Struct, frozen=True):
    v: int
    id: str
    t: int
    args: dict[str, Any] = {}


class CommandAck(msgspec.Struct, frozen=True):
    v: int
    seq: int
    id: str
    ok: bool
    t: int
    detail: str = ""


class Receipt(msgspec.Struct, frozen=True):
    """The gateway's word that these seqs are durably stored (or dead-lettered)."""

    v: int
    seqs: list[int]


Payload = TelemetryBatch | GpsBatch | EventBatch | Status | CommandAck

_DECODERS: dict[Kind, msgspec.json.Decoder[Any]] = {
    Kind.TELEMETRY: msgspec.json.Decoder(TelemetryBatch),
    Kind.GPS: msgspec.json.Decoder(GpsBatch),
    Kind.EVENT: msgspec.json.Decoder(EventBatch),
    Kind.STATUS: msgspec.json.Decoder(Status),
    Kind.ACK: msgspec.json.Decoder(CommandAck),
    Kind.CMD: msgspec.json.Decoder(Command),
    Kind.RECEIPT: msgspec.json.Decoder(Receipt),
}
_VERSION_PROBE = msgspec.json.Decoder(dict[str, Any])
_ENCODER = msgspec.json.Encoder()


def encode(payload: msgspec.Struct) -> bytes:
    return _ENCODER.encode(payload)


def _check_time(t_ms: int, now_ms: int, where: str) -> None:
    if t_ms > now_ms + MAX_FUTURE_SKEW_MS:
        raise ContractError("time_in_future", f"{where}: timestamp {t_ms} is in the future")
    if t_ms < MIN_TIME_MS:
        raise ContractError("time_too_old", f"{where}: timestamp {t_ms} is before 2000-01-01")


def decode(kind: Kind, payload: bytes, now_ms: int) -> Any:
    """Decode and validate one payload, or raise ContractError naming what is wrong.

    Limits are enforced before or during parsing, never by catching a crash: the size
    first; then, for the kinds whose schema reaches arbitrary JSON (event data, the
    unknown fields status and acks tolerate), the nesting depth before the parser runs.
    Telemetry and GPS are fixed-shape structs that forbid unknown fields: msgspec stops
    at the first unexpected token, so their hot path needs no depth pass.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(
            "too_large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}"
        )
    depth_limit = _DEPTH_LIMITS.get(kind)
    if depth_limit is not None:
        problem = check_depth(payload, depth_limit)
        if problem is not None:
            raise ContractError("too_deep", f"$: {problem}")
    decoder = _DECODERS[kind]
    try:
        msg = decoder.decode(payload)
    except msgspec.ValidationError as exc:
        # A wrong version is reported as such, not as whatever field moved in v2.
        _raise_if_wrong_version(payload)
        raise ContractError("invalid", str(exc)[:500]) from None
    except msgspec.DecodeError as exc:
        raise ContractError("malformed_json", str(exc)[:500]) from None
    if msg.v != SCHEMA_VERSION:
        raise ContractError(
            "unsupported_version",
            f"schema version {str(msg.v)[:20]} (this gateway reads {SCHEMA_VERSION})",
        )
    if isinstance(msg, TelemetryBatch):
        _validate_telemetry(msg, now_ms)
    elif isinstance(msg, GpsBatch):
        _validate_gps(msg, now_ms)
    elif isinstance(msg, EventBatch):
        _validate_events(msg, now_ms)
    elif isinstance(msg, Status):
        _validate_status(msg, now_ms)
    elif isinstance(msg, CommandAck):
        _validate_ack(msg, now_ms)
    return msg


def probe(payload: bytes) -> dict[str, Any] | None:
    """The top-level object of a payload that failed its schema, for its `v` and `seq`.

    On the reject path only: any JSON is possible here, so the depth is checked first
    (a deep document would make the parser recurse until RecursionError)."""
    if len(payload) > MAX_PAYLOAD_BYTES or check_depth(payload, MAX_DEPTH) is not None:
        return None
    try:
        obj = _VERSION_PROBE.decode(payload)
    except msgspec.MsgspecError:
        return None
    return obj if isinstance(obj, dict) else None


def _raise_if_wrong_version(payload: bytes) -> None:
    obj = probe(payload)
    v = None if obj is None else obj.get("v")
    if isinstance(v, int) and not isinstance(v, bool) and v != SCHEMA_VERSION:
        raise ContractError(
            "unsupported_version",
            f"schema version {str(v)[:20]} (this gateway reads {SCHEMA_VERSION})",
        )


def _check_seq(seq: int) -> None:
    if not 0 <= seq < 2**63:
        raise ContractError("out_of_range", f"$.seq: {str(seq)[:30]} out of range 0..2^63-1")


def _check_count(n: int, what: str) -> None:
    if n == 0:
        raise ContractError("invalid", f"empty batch: no {what}")
    if n > MAX_ITEMS_PER_BATCH:
        raise ContractError("too_large", f"{n} {what} in one batch (max {MAX_ITEMS_PER_BATCH})")


_KNOWN_METRICS: set[str] = set()  # names already checked: a fleet reports a handful


def _validate_telemetry(msg: TelemetryBatch, now_ms: int) -> None:
    """Whole-batch checks at C speed on the hot path; a failure is then located exactly."""
    _check_seq(msg.seq)
    samples = msg.samples
    _check_count(len(samples), "samples")
    times = [s.t_ms for s in samples]
    lo, hi = min(times), max(times)
    if hi > now_ms + MAX_FUTURE_SKEW_MS or lo < MIN_TIME_MS:
        for i, t in enumerate(times):
            _check_time(t, now_ms, f"$.samples[{i}]")
    new_metrics = {s.metric for s in samples} - _KNOWN_METRICS
    for metric in new_metrics:
        if not _METRIC_RE.match(metric):
            i = next(i for i, s in enumerate(samples) if s.metric == metric)
            raise ContractError(
                "invalid", f"$.samples[{i}].metric: invalid metric name {metric[:70]!r}"
            )
    if len(_KNOWN_METRICS) < 10_000:
        _KNOWN_METRICS.update(new_metrics)
    if not all(map(math.isfinite, [s.value for s in samples])):
        i = next(i for i, s in enumerate(samples) if not math.isfinite(s.value))
        raise ContractError("invalid", f"$.samples[{i}].value: not a finite number")


def _validate_gps(msg: GpsBatch, now_ms: int) -> None:
    _check_seq(msg.seq)
    _check_count(len(msg.fixes), "fixes")
    for i, f in enumerate(msg.fixes):
        _check_time(f.t_ms, now_ms, f"$.fixes[{i}]")
        # NaN fails every comparison, so these also refuse it
        if not (-180.0 <= f.lon <= 180.0 and -90.0 <= f.lat <= 90.0):
            raise ContractError(
                "out_of_range", f"$.fixes[{i}]: coordinates out of range ({f.lon}, {f.lat})"
            )
        if not 0.0 <= f.accuracy_m <= MAX_ACCURACY_M:
            raise ContractError(
                "out_of_range", f"$.fixes[{i}].accuracy_m: must be 0 to {MAX_ACCURACY_M:g} m"
            )
        if f.speed_mps is not None and not 0.0 <= f.speed_mps <= MAX_SPEED_MPS:
            raise ContractError(
                "out_of_range", f"$.fixes[{i}].speed_mps: must be 0 to {MAX_SPEED_MPS:g} m/s"
            )
        if f.heading_deg is not None and not 0.0 <= f.heading_deg <= 360.0:
            raise ContractError("out_of_range", f"$.fixes[{i}].heading_deg: must be 0 to 360")


def _check_text(value: str, where: str, max_chars: int, *, multiline: bool = False) -> None:
    if len(value) > max_chars:
        raise ContractError("too_long", f"{where}: {len(value)} characters (at most {max_chars})")
    problem = text_problem(value, multiline=multiline)
    if problem is not None:
        raise ContractError("bad_text", f"{where}: {problem}")


def _check_pattern(value: str, where: str, pattern: re.Pattern[str], what: str) -> None:
    if len(value) > 64 and pattern is not SIG_RE:
        raise ContractError("too_long", f"{where}: {len(value)} characters (at most 64)")
    if not pattern.match(value):
        problem = text_problem(value)
        if problem is not None:
            raise ContractError("bad_text", f"{where}: {problem}")
        raise ContractError("invalid", f"{where}: not a valid {what} {value[:70]!r}")


def _validate_events(msg: EventBatch, now_ms: int) -> None:
    _check_seq(msg.seq)
    _check_count(len(msg.events), "events")
    for i, e in enumerate(msg.events):
        where = f"$.events[{i}]"
        _check_time(e.t, now_ms, where)
        _check_pattern(e.id, f"{where}.id", EVENT_ID_RE, "event id")
        _check_pattern(e.type, f"{where}.type", EVENT_TYPE_RE, "event type")
        if e.sig is not None:
            _check_pattern(e.sig, f"{where}.sig", SIG_RE, "signature")
        size = len(_ENCODER.encode(e.data))
        if size > MAX_EVENT_DATA_BYTES:
            raise ContractError(
                "too_large", f"{where}.data: {size} bytes (at most {MAX_EVENT_DATA_BYTES})"
            )
        _check_data(e.data, f"{where}.data")


def _check_data(value: Any, where: str) -> None:
    """Every key and string plain text, every number finite and in int64: what jsonb and
    the consumers take. The depth was bounded before parsing, so recursion is safe."""
    if isinstance(value, str):
        _check_text(value, where, MAX_DATA_STRING_CHARS, multiline=True)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not -MAX_DATA_INT <= value < MAX_DATA_INT:
            raise ContractError("out_of_range", f"{where}: integer outside int64")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ContractError("out_of_range", f"{where}: not a finite number")
    elif isinstance(value, dict):
        for k, v in value.items():
            key_where = f"{where}.{k[:40]!r}" if text_problem(k) else f"{where}.{k[:40]}"
            _check_text(k, f"{key_where} (key)", 256)
            _check_data(v, key_where)
    elif isinstance(value, list):
        for j, v in enumerate(value):
            _check_data(v, f"{where}[{j}]")


def _validate_status(msg: Status, now_ms: int) -> None:
    _check_time(msg.t, now_ms, "$.t")
    if msg.fw is not None:
        _check_text(msg.fw, "$.fw", MAX_FW_CHARS)


def _validate_ack(msg: CommandAck, now_ms: int) -> None:
    _check_seq(msg.seq)
    _check_time(msg.t, now_ms, "$.t")
    if not msg.id:
        raise ContractError("invalid", "$.id: empty command id")
    _check_text(msg.id, "$.id", MAX_ACK_ID_CHARS)
    _check_text(msg.detail, "$.detail", MAX_ACK_DETAIL_CHARS, multiline=True)
