"""Batched, idempotent writes: one transaction per batch of MQTT messages.

Idempotency: the batch's `(device_id, seq)` keys are inserted into `ingest_message` with
ON CONFLICT DO NOTHING; only the messages whose key was new have their contents copied
(binary COPY) into the time-series tables. Dead letters, stage handlers and the latest
values go into the same transaction. The caller acknowledges to MQTT only after commit.

Isolation (`write_isolated`): a batch write that fails for any reason other than "the
database is unavailable" is bad input somewhere in the batch, whether the database
refused a value (DataError, IntegrityError, ...), the encoder or a stage handler raised.
The batch is split in halves, each retried in its own transaction (first half first,
which keeps each device's order); a single message that still fails after
`max_attempts` is dead-lettered in a transaction of its own, with the error's class and
message, and counts as handled: acknowledged and receipted like any dead letter. A poison
message therefore costs about two extra writes of its batch and never blocks or loops.
Devices that recently sent bad input (a decode refusal or a poison message) are suspects
for SUSPECT_S: their messages go in a part of the batch of their own (`BatchWriter.job`),
so their next poison message costs only that small part, not everyone's batch.
Unavailability (connection lost or refused, the server shutting down or out of
resources) raises DatabaseUnavailable with the job's progress kept, so the caller backs
off and resumes where it stopped, writing nothing twice.
"""

from __future__ import annotations

import logging
import re
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
import psycopg

from gateway.decode import Decoded, Rejected
from gateway.pipeline import NewMessages, StageHandler
from telemetry.contracts import (
    CommandAck,
    EventBatch,
    FieldEvent,
    GpsBatch,
    Sample,
    Status,
    TelemetryBatch,
)

log = logging.getLogger(__name__)

# (public key or None, device id, event) -> (verified, reason when not)
EventVerifier = Callable[[bytes | None, str, FieldEvent], tuple[bool, str | None]]
# (connection, device ids of a batch) -> {device id: why its messages are refused}; inside
# the batch's transaction. Given by the composition root (devices: decommissioned devices).
DeviceAdmission = Callable[[psycopg.Connection, Sequence[str]], dict[str, str]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JSON = msgspec.json.Encoder()
# SQLSTATE classes that mean the server, not the data: connection exception, insufficient
# resources, operator intervention, system error.
_UNAVAILABLE_CLASSES = frozenset({"08", "53", "57", "58"})
_BAD_INPUT_STATES = frozenset({"57014"})  # query_canceled: a statement timeout on one input
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
MAX_BROKEN_CONNECTIONS = 3  # a message that breaks the connection this often is poison too
SUSPECT_S = 600.0  # how long a device that sent bad input is written apart from the others
MAX_SUSPECTS = 10_000


class DatabaseUnavailable(Exception):
    """The database cannot be reached or cannot work now; retry later, nothing was lost."""


def is_unavailable(exc: BaseException, conn: psycopg.Connection | None) -> bool:
    """Whether `exc` says the database is away (retry the same work) rather than that
    something in the batch is bad (isolate it)."""
    if not isinstance(exc, psycopg.Error):
        return False
    if conn is None or conn.closed or conn.broken:
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    state = exc.sqlstate or ""
    return state[:2] in _UNAVAILABLE_CLASSES and state not in _BAD_INPUT_STATES


def plain_text(value: str, limit: int = 2000) -> str:
    """`value` made safe for a text column: no NUL or control characters, no lone
    surrogates (escaped, so the dead letter still shows what was there)."""
    out = value[:limit].encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", out)


def _ts(t_ms: int) -> datetime:
    return datetime.fromtimestamp(t_ms / 1000.0, UTC)


def no_verifier(_key: bytes | None, _device: str, event: FieldEvent) -> tuple[bool, str | None]:
    return False, "no signature verifier configured" if event.sig else "unsigned"


@dataclass(slots=True)
class WriteResult:
    stored_messages: int = 0
    stored_points: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    receipts: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (tenant, device)
    # device timestamp of each stored message's newest item, for latency figures
    newest_item_ms: list[int] = field(default_factory=list)
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    poison: int = 0  # messages isolated from their batch and dead-lettered
    splits: int = 0  # batches (or parts) split to isolate a failure

    def merge(self, other: WriteResult) -> None:
        self.stored_messages += other.stored_messages
        self.stored_points += other.stored_points
        self.duplicates += other.duplicates
        self.dead_letters += other.dead_letters
        for key, seqs in other.receipts.items():
            self.receipts.setdefault(key, []).extend(seqs)
        self.newest_item_ms.extend(other.newest_item_ms)
        for reason, n in other.dead_letter_reasons.items():
            self.dead_letter_reasons[reason] = self.dead_letter_reasons.get(reason, 0) + n
        self.poison += other.poison
        self.splits += other.splits


@dataclass(slots=True)
class _Chunk:
    items: list[Decoded | Rejected]
    failures: int = 0
    broken_connections: int = 0


@dataclass(slots=True)
class BatchJob:
    """One batch on its way through `write_isolated`: the parts still to write (a stack,
    next on top) and what the written parts did. Survives DatabaseUnavailable."""

    pending: list[_Chunk]
    result: WriteResult = field(default_factory=WriteResult)

    @classmethod
    def of(cls, *parts: Sequence[Decoded | Rejected]) -> BatchJob:
        """A job writing each non-empty part in its own transaction, first part first."""
        return cls([_Chunk(list(p)) for p in reversed(parts) if p])

    @property
    def done(self) -> bool:
        return not self.pending


class BatchWriter:
    """Owns one synchronous connection; used from the gateway's writer thread only."""

    def __init__(
        self,
        dsn: str,
        handlers: Sequence[StageHandler] = (),
        verifier: EventVerifier = no_verifier,
        admission: DeviceAdmission | None = None,
    ) -> None:
        self.dsn = dsn
        self.handlers = list(handlers)
        self.verifier = verifier
        self.admission = admission
        self._conn: psycopg.Connection | None = None
        self._known_devices: set[str] = set()
        self._new_devices: set[str] = set()  # inserted in the open transaction
        self._suspects: dict[str, float] = {}  # device -> monotonic time it is trusted again
        self._public_keys: dict[str, bytes | None] = {}

    def connect(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.dsn, autocommit=False, connect_timeout=5)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, batch: Sequence[Decoded | Rejected]) -> WriteResult:
        """One transaction for the whole batch; raises whatever went wrong."""
        conn = self.connect()
        self._new_devices.clear()
        try:
            result = self._write(conn, batch)
            conn.commit()
        except BaseException:
            for h in self.handlers:
                h.rollback()
            if not conn.closed:
                try:
                    conn.rollback()
                except psycopg.Error:
                    conn.close()
            raise
        self._known_devices |= self._new_devices
        for h in self.handlers:
            h.committed()
        return result

    def job(self, batch: Sequence[Decoded | Rejected], now_s: float) -> BatchJob:
        """A job for `batch` with the messages of suspect devices (bad input lately, this
        batch included) in a part of their own, written after the others."""
        for m in batch:
            if isinstance(m, Rejected) and m.device_id is not None:
                self._suspect(m.device_id, now_s)
        suspects = self._suspects
        if not suspects:
            return BatchJob.of(batch)
        apart = [m for m in batch if suspects.get(m.device_id or "", 0.0) > now_s]
        if not apart:
            return BatchJob.of(batch)
        rest = [m for m in batch if suspects.get(m.device_id or "", 0.0) <= now_s]
        return BatchJob.of(rest, apart)

    def _suspect(self, device_id: str, now_s: float) -> None:
        if len(self._suspects) >= MAX_SUSPECTS:
            self._suspects = {d: t for d, t in self._suspects.items() if t > now_s}
            if len(self._suspects) >= MAX_SUSPECTS:
                return  # a fleet-wide storm: isolation by splitting still bounds it
        self._suspects[device_id] = now_s + SUSPECT_S

    def write_isolated(self, job: BatchJob, max_attempts: int = 2) -> None:
        """Write every part of `job`, isolating and dead-lettering what fails (see the
        module docstring). Raises only DatabaseUnavailable, with `job` resumable."""
        while job.pending:
            chunk = job.pending[-1]
            try:
                job.result.merge(self._write_unavailable_aware(chunk))
                job.pending.pop()
                continue
            except DatabaseUnavailable:
                raise
            except Exception as exc:  # any other failure is bad input
                failure = exc
            items = chunk.items
            log.warning(
                "gateway: write of %d messages failed (%s: %s); isolating",
                len(items),
                type(failure).__name__,
                str(failure).strip()[:200],
            )
            if len(items) == 1 and chunk.failures + 1 >= max_attempts:
                # may raise DatabaseUnavailable: the chunk stays on the stack for the retry
                job.result.merge(self._dead_letter_poison(items[0], failure))
                job.pending.pop()
            elif len(items) == 1:
                chunk.failures += 1
            else:
                job.pending.pop()
                mid = len(items) // 2
                job.pending.append(_Chunk(items[mid:]))
                job.pending.append(_Chunk(items[:mid]))
                job.result.splits += 1

    def _write_unavailable_aware(self, chunk: _Chunk) -> WriteResult:
        try:
            conn = self.connect()
        except psycopg.Error as exc:
            raise DatabaseUnavailable(str(exc).strip()) from exc
        try:
            return self.write(chunk.items)
        except psycopg.Error as exc:
            if not is_unavailable(exc, self._conn):
                raise
            if conn.broken or conn.closed:
                # Lost in the middle of this write: an outage, or an input that crashes
                # the server process. Only the latter repeats with the same few messages.
                chunk.broken_connections += 1
                if chunk.broken_connections > MAX_BROKEN_CONNECTIONS and len(chunk.items) < 64:
                    raise
            raise DatabaseUnavailable(str(exc).strip()) from exc

    def _dead_letter_poison(self, m: Decoded | Rejected, exc: BaseException) -> WriteResult:
        """One message that failed alone, dead-lettered in its own transaction."""
        reason = type(exc).__name__[:60]
        detail = plain_text(f"{type(exc).__module__}.{type(exc).__name__}: {exc}".strip())
        res = WriteResult(dead_letters=1, poison=1, dead_letter_reasons={reason: 1})
        try:
            conn = self.connect()
            conn.execute(
                "INSERT INTO dead_letter (topic, device_id, reason, detail, payload)"
                " VALUES (%s, %s, %s, %s, %s)",
                (plain_text(m.inbound.topic), m.device_id, reason, detail, m.inbound.payload),
            )
            conn.commit()
        except psycopg.Error as err:
            # Every value is sanitised and the payload is bytea: only the server can fail.
            self.close()
            raise DatabaseUnavailable(f"dead letter not written: {err}") from err
        if m.device_id is not None:
            self._suspect(m.device_id, time.monotonic())
        log.error(
            "gateway: poison message from %s on %s dead-lettered: %s",
            m.device_id,
            plain_text(m.inbound.topic, 200),
            detail[:300],
        )
        topic = m.topic
        if topic is not None and m.seq is not None:
            res.receipts[(topic.tenant, topic.device_id)] = [m.seq]
        return res

    # ------------------------------------------------------------------ steps

    def _write(self, conn: psycopg.Connection, batch: Sequence[Decoded | Rejected]) -> WriteResult:
        res = WriteResult()
        decoded = [m for m in batch if isinstance(m, Decoded)]
        rejected = [m for m in batch if isinstance(m, Rejected)]
        if self.admission is not None and decoded:
            refused = self.admission(conn, sorted({d.device_id for d in decoded}))
            if refused:  # e.g. decommissioned: kept whole as dead letters, never stored
                rejected += [
                    Rejected(d.inbound, d.topic, "device_refused", refused[d.device_id], d.seq)
                    for d in decoded
                    if d.device_id in refused
                ]
                decoded = [d for d in decoded if d.device_id not in refused]
        self._ensure_devices(conn, decoded)
        keyed = [d for d in decoded if d.seq is not None]
        new_keys = self._claim_keys(conn, keyed)
        new = NewMessages()
        if decoded:
            new.earliest_received_ns = min(d.inbound.received_ns for d in decoded)
        seen_in_batch: set[tuple[str, int]] = set()
        for d in keyed:
            key = (d.device_id, d.seq)
            assert d.seq is not None
            res.receipts.setdefault((d.topic.tenant, d.device_id), []).append(d.seq)
            if key in new_keys and key not in seen_in_batch:
                seen_in_batch.add(key)
                new.add(d)
            else:
                res.duplicates += 1
        res.stored_points += self._copy_samples(conn, new.telemetry)
        res.stored_points += self._copy_fixes(conn, new.gps)
        res.stored_points += self._insert_events(conn, new.events)
        self._insert_acks(conn, new.acks)
        self._upsert_latest(conn, new.telemetry)
        self._upsert_status(conn, [d for d in decoded if isinstance(d.msg, Status)])
        res.stored_messages = len(seen_in_batch)
        for _, tb in new.telemetry:
            res.newest_item_ms.append(max([s.t_ms for s in tb.samples]))
        for _, gb in new.gps:
            res.newest_item_ms.append(max(f.t_ms for f in gb.fixes))
        res.dead_letters = self._dead_letters(conn, rejected)
        for r in rejected:
            res.dead_letter_reasons[r.reason] = res.dead_letter_reasons.get(r.reason, 0) + 1
        for r in rejected:
            if r.topic is not None and r.seq is not None:
                res.receipts.setdefault((r.topic.tenant, r.topic.device_id), []).append(r.seq)
        for h in self.handlers:
            h.handle(conn, new)
        return res

    def _ensure_devices(self, conn: psycopg.Connection, decoded: list[Decoded]) -> None:
        unknown = {
            (d.device_id, d.topic.tenant, "phone" if isinstance(d.msg, GpsBatch) else "equipment")
            for d in decoded
            if d.device_id not in self._known_devices
        }
        if not unknown:
            return
        ids, tenants, kinds = zip(*sorted(unknown), strict=True)
        conn.execute(
            "INSERT INTO device (device_id, tenant, kind) SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])"
            " ON CONFLICT (device_id) DO NOTHING",
            (list(ids), list(tenants), list(kinds)),
        )
        self._new_devices.update(ids)  # known once committed

    def _claim_keys(self, conn: psycopg.Connection, keyed: list[Decoded]) -> set[tuple[str, int]]:
        if not keyed:
            return set()
        devs = [d.device_id for d in keyed]
        seqs = [str(d.seq) for d in keyed]
        kinds = [d.topic.kind.value for d in keyed]
        items = [str(_item_count(d.msg)) for d in keyed]
        rows = conn.execute(
            "INSERT INTO ingest_message (device_id, seq, kind, items)"
            " SELECT * FROM unnest(" + _ARRAYS_4.format("text", "bigint", "text", "int") + ")"
            " ON CONFLICT (device_id, seq) DO NOTHING RETURNING device_id, seq",
            (_joined(devs), ",".join(seqs), ",".join(kinds), ",".join(items)),
        ).fetchall()
        return {(r[0], r[1]) for r in rows}

    def _copy_samples(
        self, conn: psycopg.Connection, msgs: list[tuple[str, TelemetryBatch]]
    ) -> int:
        if not msgs:
            return 0
        data = encode_sample_rows(msgs)
        with conn.cursor().copy(
            "COPY telemetry_sample (time, device_id, metric, value, seq) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.write(data)
        return sum(len(tb.samples) for _, tb in msgs)

    def _copy_fixes(self, conn: psycopg.Connection, msgs: list[tuple[str, GpsBatch]]) -> int:
        if not msgs:
            return 0
        n = 0
        with conn.cursor().copy(
            "COPY gps_fix (time, device_id, seq, lon, lat, accuracy_m, speed_mps, heading_deg)"
            " FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                ["timestamptz", "text", "int8", "float8", "float8", "float4", "float4", "float4"]
            )
            for device_id, gb in msgs:
                for f in gb.fixes:
                    copy.write_row(
                        (
                            _ts(f.t_ms),
                            device_id,
                            gb.seq,
                            f.lon,
                            f.lat,
                            f.accuracy_m,
                            f.speed_mps,
                            f.heading_deg,
                        )
                    )
                n += len(gb.fixes)
        return n

    def _public_key(self, conn: psycopg.Connection, device_id: str) -> bytes | None:
        if device_id not in self._public_keys:
            row = conn.execute(
                "SELECT public_key FROM device WHERE device_id = %s", (device_id,)
            ).fetchone()
            key = row[0] if row else None
            if key is None:
                return None  # not cached: the key may be registered later
            self._public_keys[device_id] = bytes(key)
        return self._public_keys[device_id]

    def _insert_events(self, conn: psycopg.Connection, msgs: list[tuple[str, EventBatch]]) -> int:
        rows = []
        for device_id, eb in msgs:
            key = self._public_key(conn, device_id)
            for idx, e in enumerate(eb.events):
                ok, reason = self.verifier(key, device_id, e)
                if not ok and device_id in self._public_keys:
                    # the device may have enrolled again with a new key: read it once more
                    del self._public_keys[device_id]
                    key = self._public_key(conn, device_id)
                    ok, reason = self.verifier(key, device_id, e)
                rows.append(
                    (
                        device_id,
                        eb.seq,
                        idx,
                        e.id,
                        _ts(e.t),
                        e.type,
                        _JSON.encode(e.data).decode(),
                        e.sig,
                        ok,
                        reason,
                    )
                )
        if rows:
            with conn.cursor() as cur:
                # An event id seen before (a device re-sending under a new seq) is kept once.
                cur.executemany(
                    "INSERT INTO device_event (device_id, seq, idx, event_id, time, type, data, sig,"
                    " verified, verify_reason) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    rows,
                )
        return len(rows)

    def _insert_acks(
        self, conn: psycopg.Connection, msgs: list[tuple[str, str, CommandAck]]
    ) -> None:
        if msgs:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO command_ack (device_id, seq, command_id, name, ok, detail, time)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [(dev, a.seq, a.id, name, a.ok, a.detail, _ts(a.t)) for dev, name, a in msgs],
                )

    def _upsert_latest(
        self, conn: psycopg.Connection, msgs: list[tuple[str, TelemetryBatch]]
    ) -> None:
        latest: dict[tuple[str, str], tuple[int, float]] = {}
        for device_id, tb in msgs:
            for metric, (t_ms, value) in latest_per_metric(tb.samples).items():
                key = (device_id, metric)
                cur = latest.get(key)
                if cur is None or t_ms >= cur[0]:
                    latest[key] = (t_ms, value)
        if not latest:
            return
        keys = sorted(latest)
        conn.execute(
            "INSERT INTO telemetry_latest (device_id, metric, time, value)"
            " SELECT d, m, to_timestamp(t / 1000.0), v FROM unnest("
            + _ARRAYS_4.format("text", "text", "bigint", "float8")
            + ") AS u(d, m, t, v)"
            " ON CONFLICT (device_id, metric) DO UPDATE SET time = EXCLUDED.time, value = EXCLUDED.value"
            " WHERE EXCLUDED.time >= telemetry_latest.time",
            (
                _joined([k[0] for k in keys]),
                _joined([k[1] for k in keys]),
                ",".join([str(latest[k][0]) for k in keys]),
                ",".join([repr(latest[k][1]) for k in keys]),
            ),
        )

    def _upsert_status(self, conn: psycopg.Connection, msgs: list[Decoded]) -> None:
        for d in msgs:
            st: Status = d.msg
            conn.execute(
                "INSERT INTO device_status (device_id, online, changed_at, firmware) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (device_id) DO UPDATE SET online = EXCLUDED.online,"
                " changed_at = EXCLUDED.changed_at, firmware = COALESCE(EXCLUDED.firmware, device_status.firmware)"
                " WHERE EXCLUDED.changed_at >= device_status.changed_at",
                (d.device_id, st.online, _ts(st.t), st.fw),
            )

    def _dead_letters(self, conn: psycopg.Connection, rejected: list[Rejected]) -> int:
        if not rejected:
            return 0
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO dead_letter (topic, device_id, reason, detail, payload) VALUES (%s, %s, %s, %s, %s)",
                [
                    (
                        plain_text(r.inbound.topic),
                        r.device_id,
                        r.reason,
                        plain_text(r.detail),
                        r.inbound.payload,
                    )
                    for r in rejected
                ],
            )
        for r in rejected:
            log.warning(
                "dead letter from %s on %s: %s: %s",
                r.device_id,
                r.inbound.topic[:200],
                r.reason,
                r.detail[:200],
            )
        return len(rejected)


# Arrays as one comma-joined text parameter each: psycopg adapts a Python list element by
# element in Python, which at 10-point messages was a large part of a batch's CPU. Device
# ids, metric names and kinds never contain a comma (telemetry.contracts validates them at
# decode; `_joined` checks); integers are decimal and floats their exact shortest repr.
_ARRAYS_4 = (
    "string_to_array(%s, ',')::{}[], string_to_array(%s, ',')::{}[],"
    " string_to_array(%s, ',')::{}[], string_to_array(%s, ',')::{}[]"
)


def _joined(values: list[str]) -> str:
    out = ",".join(values)
    if out.count(",") != len(values) - 1 or any(not v for v in values):
        raise ValueError("an identifier with a comma or empty reached the batch writer")
    return out


def _item_count(msg: object) -> int:
    if isinstance(msg, TelemetryBatch):
        return len(msg.samples)
    if isinstance(msg, GpsBatch):
        return len(msg.fixes)
    if isinstance(msg, EventBatch):
        return len(msg.events)
    return 1


# PostgreSQL's binary COPY format, written directly: building datetime objects and
# adapting each value was most of the gateway's CPU per sample.
_PG_EPOCH_MS = 946_684_800_000  # 2000-01-01T00:00:00Z, the epoch of binary timestamps
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_ROW_STRUCTS: dict[tuple[int, int], struct.Struct] = {}


def _row_struct(device_len: int, metric_len: int) -> struct.Struct:
    st = _ROW_STRUCTS.get((device_len, metric_len))
    if st is None:
        # 5 fields: time int8, device_id text, metric text, value float8, seq int8
        st = struct.Struct(f">hiqi{device_len}si{metric_len}sidiq")
        _ROW_STRUCTS[(device_len, metric_len)] = st
    return st


def encode_sample_rows(msgs: Sequence[tuple[str, TelemetryBatch]]) -> bytes:
    """(time, device_id, metric, value, seq) rows of every sample, in binary COPY format."""
    out = bytearray(_COPY_HEADER)
    for device_id, tb in msgs:
        dev = device_id.encode()
        seq = tb.seq
        packers: dict[str, tuple[bytes, int, struct.Struct]] = {}
        for s in tb.samples:
            p = packers.get(s.metric)
            if p is None:
                m = s.metric.encode()
                p = packers[s.metric] = (m, len(m), _row_struct(len(dev), len(m)))
            m, mlen, st = p
            out += st.pack(
                5, 8, (s.t_ms - _PG_EPOCH_MS) * 1000, len(dev), dev, mlen, m, 8, s.value, 8, seq
            )
    out += _COPY_TRAILER
    return bytes(out)


def latest_per_metric(samples: Sequence[Sample]) -> dict[str, tuple[int, float]]:
    """Newest (t_ms, value) per metric. Devices send samples in time order, which lets a
    comprehension keep the last one; any other order takes the careful path."""
    times = [s.t_ms for s in samples]
    if times == sorted(times):
        return {s.metric: (s.t_ms, s.value) for s in samples}
    out: dict[str, tuple[int, float]] = {}
    for s in samples:
        cur = out.get(s.metric)
        if cur is None or s.t_ms >= cur[0]:
            out[s.metric] = (s.t_ms, s.value)
    return out
