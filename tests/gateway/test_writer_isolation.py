"""The write path isolates whatever fails: every message ends stored or dead-lettered.

Messages here are built as structs, past the decoder, with hostile values the decoder
would refuse (NUL and lone surrogates in text, times outside any calendar, seqs past
int64, non-finite and float4-overflowing numbers, jsonb-refused data) mixed with good
ones, against the real database. A real stage handler that raises on one marker checks
that a stage failure is isolated the same way and that its state follows the commits.
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.decode import Decoded, Inbound
from gateway.pipeline import NewMessages
from gateway.writer import BatchJob, BatchWriter, DatabaseUnavailable
from telemetry.contracts import (
    CommandAck,
    EventBatch,
    FieldEvent,
    Fix,
    GpsBatch,
    Kind,
    Sample,
    Status,
    TelemetryBatch,
    Topic,
)
from tests.ports import free_port

pytestmark = pytest.mark.integration

T0_MS = 1_764_000_000_000
TENANT = "wiso"
_counter = itertools.count(1)

good_time = st.integers(T0_MS, T0_MS + 86_400_000)
hostile_time = good_time | st.integers() | st.sampled_from([-(2**62), 10**15, 2**63 - 1, 0])
hostile_text = (
    st.sampled_from(["temp_c", "rpm"])
    | st.text(max_size=12)
    | st.sampled_from(["a\x00b", "\ud800", "x\udfff", "\x1b", "é"])
)
hostile_float = st.floats(-1e6, 1e6) | st.floats() | st.sampled_from([1e39, -1e300, 3.5e38])
hostile_seq = st.none() | st.integers() | st.sampled_from([2**63, -1, 2**64])
json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | hostile_text
hostile_data = st.dictionaries(
    hostile_text,
    st.recursive(
        json_leaf,
        lambda x: st.lists(x, max_size=3) | st.dictionaries(hostile_text, x, max_size=3),
        max_leaves=8,
    ),
    max_size=3,
)


@st.composite
def messages(draw: st.DrawFn) -> tuple[Kind, Any]:
    kind = draw(st.sampled_from([Kind.TELEMETRY, Kind.GPS, Kind.EVENT, Kind.STATUS, Kind.ACK]))
    s = draw(hostile_seq)
    seq = next(_counter) if s is None else s
    t = draw(hostile_time)
    if kind is Kind.TELEMETRY:
        n = draw(st.integers(1, 3))
        samples = [Sample(t + i, draw(hostile_text), draw(hostile_float)) for i in range(n)]
        return kind, TelemetryBatch(1, seq, samples)
    if kind is Kind.GPS:
        f = [draw(hostile_float) for _ in range(5)]
        return kind, GpsBatch(1, seq, [Fix(t, f[0], f[1], f[2], f[3], f[4])])
    if kind is Kind.EVENT:
        ev = FieldEvent(
            id=draw(hostile_text) + uuid.uuid4().hex[:8],
            t=t,
            type=draw(hostile_text),
            data=draw(hostile_data),
            sig=draw(st.none() | hostile_text),
        )
        return kind, EventBatch(1, seq, [ev])
    if kind is Kind.STATUS:
        return kind, Status(1, draw(st.booleans()), t, draw(st.none() | hostile_text))
    return kind, CommandAck(1, seq, draw(hostile_text), draw(st.booleans()), t, draw(hostile_text))


class FussyStage:
    """A real stage: counts the telemetry messages it saw commit; refuses metric `boom`."""

    name = "fussy"

    def __init__(self) -> None:
        self.pending = 0
        self.committed_messages = 0
        self.rollbacks = 0

    def handle(self, conn: psycopg.Connection, new: NewMessages) -> None:
        for _, tb in new.telemetry:
            if any(s.metric == "boom" for s in tb.samples):
                raise ValueError("boom")
        self.pending += len(new.telemetry)

    def rollback(self) -> None:
        self.pending = 0
        self.rollbacks += 1

    def committed(self) -> None:
        self.committed_messages += self.pending
        self.pending = 0


def _decoded(prefix: str, i: int, kind: Kind, msg: Any) -> Decoded:
    device = f"{prefix}-{i}"
    name = "ping" if kind is Kind.ACK else None
    topic = Topic(TENANT, device, kind, name)
    marker = f"{prefix}/{i}".encode()  # the payload: finds the message's dead letter
    return Decoded(Inbound(str(topic), marker, mid=i, qos=1, received_ns=0), topic, msg)


def _fates(dsn: str, prefix: str, batch: list[Decoded]) -> list[tuple[bool, bool]]:
    """(stored, dead-lettered) per message."""
    with psycopg.connect(dsn) as conn:
        keys = set(
            conn.execute(
                "SELECT device_id, seq FROM ingest_message WHERE device_id LIKE %s",
                (f"{prefix}-%",),
            ).fetchall()
        )
        statuses = {
            r[0]
            for r in conn.execute(
                "SELECT device_id FROM device_status WHERE device_id LIKE %s", (f"{prefix}-%",)
            )
        }
        dead = {
            bytes(r[0])
            for r in conn.execute(
                "SELECT payload FROM dead_letter WHERE device_id LIKE %s", (f"{prefix}-%",)
            )
        }
    out = []
    for d in batch:
        if isinstance(d.msg, Status):
            stored = d.device_id in statuses
        else:
            stored = (d.device_id, d.seq) in keys
        out.append((stored, d.inbound.payload in dead))
    return out


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(messages(), min_size=1, max_size=24), st.integers(0, 3))
def test_every_message_ends_stored_or_dead_lettered_and_the_writer_never_raises(
    db_dsn: str, msgs: list[tuple[Kind, Any]], booms: int
) -> None:
    prefix = f"w{uuid.uuid4().hex[:8]}"
    batch = [_decoded(prefix, i, k, m) for i, (k, m) in enumerate(msgs)]
    for j in range(booms):  # good values, refused by the stage
        tb = TelemetryBatch(1, next(_counter), [Sample(T0_MS, "boom", 1.0)])
        batch.insert(j * 3 % (len(batch) + 1), _decoded(prefix, len(batch), Kind.TELEMETRY, tb))
    stage = FussyStage()
    writer = BatchWriter(db_dsn, [stage])
    job = BatchJob.of(batch)
    try:
        writer.write_isolated(job)
    finally:
        writer.close()
    assert job.done
    fates = _fates(db_dsn, prefix, batch)
    for d, (stored, dead) in zip(batch, fates, strict=True):
        assert stored != dead, f"{d.msg!r}: stored={stored} dead-lettered={dead}"
    res = job.result
    statuses = sum(1 for d, (s, _) in zip(batch, fates, strict=True) if s and d.seq is None)
    assert res.stored_messages + statuses + res.dead_letters == len(batch)  # status: no seq
    assert res.poison == res.dead_letters >= booms
    stored_telemetry = sum(
        1 for d, (s, _) in zip(batch, fates, strict=True) if s and isinstance(d.msg, TelemetryBatch)
    )
    assert stage.committed_messages == stored_telemetry
    # every keyed message, stored or dead-lettered, is receipted: the device stops resending
    receipted = {(dev, seq) for (_, dev), seqs in res.receipts.items() for seq in seqs}
    assert receipted == {(d.device_id, d.seq) for d in batch if d.seq is not None}


def test_a_poison_message_costs_its_neighbours_nothing(db_dsn: str) -> None:
    prefix = f"w{uuid.uuid4().hex[:8]}"
    good = [
        (Kind.TELEMETRY, TelemetryBatch(1, next(_counter), [Sample(T0_MS + i, "temp_c", 1.0)]))
        for i in range(40)
    ]
    poison = (Kind.TELEMETRY, TelemetryBatch(1, next(_counter), [Sample(T0_MS, "t\x00c", 1.0)]))
    batch = [_decoded(prefix, i, k, m) for i, (k, m) in enumerate([*good[:25], poison, *good[25:]])]
    writer = BatchWriter(db_dsn)
    job = BatchJob.of(batch)
    writer.write_isolated(job)
    writer.close()
    assert (job.result.stored_messages, job.result.poison) == (40, 1)
    assert job.result.splits <= 2 * 6  # a bisection, not a message-by-message retry
    with psycopg.connect(db_dsn) as conn:
        row = conn.execute(
            "SELECT reason, detail FROM dead_letter WHERE payload = %s", (f"{prefix}/25".encode(),)
        ).fetchone()
    assert row is not None
    assert row[0] == "CharacterNotInRepertoire" and "0x00" in row[1]


def test_an_unreachable_database_raises_and_keeps_the_job(db_dsn: str) -> None:
    writer = BatchWriter(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    tb = TelemetryBatch(1, 1, [Sample(T0_MS, "temp_c", 1.0)])
    job = BatchJob.of([_decoded("wdown", 0, Kind.TELEMETRY, tb)])
    with pytest.raises(DatabaseUnavailable):
        writer.write_isolated(job)
    assert not job.done and len(job.pending[0].items) == 1


def test_a_device_that_sent_poison_is_written_apart_so_its_next_poison_costs_no_split(
    db_dsn: str,
) -> None:
    prefix = f"w{uuid.uuid4().hex[:8]}"

    def telemetry(i: int, metric: str) -> Decoded:
        tb = TelemetryBatch(1, next(_counter), [Sample(T0_MS + i, metric, 1.0)])
        return _decoded(prefix, i, Kind.TELEMETRY, tb)

    writer = BatchWriter(db_dsn)
    evil = 7
    first = [telemetry(i, "t\x00c" if i == evil else "temp_c") for i in range(16)]
    job = writer.job(first, now_s=time.monotonic())
    writer.write_isolated(job)
    assert (job.result.poison, job.result.splits) == (1, 4)  # found by bisection
    again = [telemetry(i, "t\x00c" if i == evil else "temp_c") for i in range(16)]
    job = writer.job(again, now_s=time.monotonic())
    assert [len(c.items) for c in job.pending] == [1, 15]  # the suspect's part is apart
    writer.write_isolated(job)
    writer.close()
    assert (job.result.poison, job.result.splits, job.result.stored_messages) == (1, 0, 15)
