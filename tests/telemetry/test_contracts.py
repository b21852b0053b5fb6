"""The wire contract: round trips, and every kind of bad payload named precisely."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemetry.contracts import (
    MAX_FUTURE_SKEW_MS,
    MAX_PAYLOAD_BYTES,
    ContractError,
    EventBatch,
    FieldEvent,
    Fix,
    GpsBatch,
    Kind,
    Sample,
    TelemetryBatch,
    Topic,
    decode,
    encode,
)

NOW_MS = 1_795_000_000_000

metrics = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
times = st.integers(min_value=946_684_800_000, max_value=NOW_MS)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
samples = st.builds(Sample, t_ms=times, metric=metrics, value=finite)
fixes = st.builds(
    Fix,
    t_ms=times,
    lon=st.floats(-180, 180),
    lat=st.floats(-90, 90),
    accuracy_m=st.floats(0, 1e4),
    speed_mps=st.none() | st.floats(0, 100),
    heading_deg=st.none() | st.floats(0, 360),
)


@given(st.integers(0, 2**63 - 1), st.lists(samples, min_size=1, max_size=50))
def test_telemetry_batch_round_trips(seq: int, items: list[Sample]) -> None:
    msg = TelemetryBatch(v=1, seq=seq, samples=items)
    assert decode(Kind.TELEMETRY, encode(msg), NOW_MS) == msg


@given(st.integers(0, 2**63 - 1), st.lists(fixes, min_size=1, max_size=50))
def test_gps_batch_round_trips(seq: int, items: list[Fix]) -> None:
    msg = GpsBatch(v=1, seq=seq, fixes=items)
    assert decode(Kind.GPS, encode(msg), NOW_MS) == msg


def test_event_batch_round_trips() -> None:
    msg = EventBatch(
        v=1, seq=7, events=[FieldEvent(id="e1", t=NOW_MS, type="visit.checkin", data={"a": [1, 2]})]
    )
    assert decode(Kind.EVENT, encode(msg), NOW_MS) == msg


@pytest.mark.parametrize(
    ("payload", "reason", "mentions"),
    [
        (b'{"v":1,"seq":1,"samples":[[1,"t",', "malformed_json", "truncated"),
        (b"not json at all", "malformed_json", ""),
        (b'{"v":1,"seq":"one","samples":[[1795000000000,"t",1.0]]}', "invalid", "$.seq"),
        (b'{"v":1,"samples":[[1795000000000,"t",1.0]]}', "invalid", "seq"),
        (b'{"v":1,"seq":1,"samples":[[1795000000000,"t","hot"]]}', "invalid", "$.samples[0]"),
        (
            b'{"v":2,"seq":1,"samples":[[1795000000000,"t",1.0]]}',
            "unsupported_version",
            "version 2",
        ),
        (b'{"v":2,"seq":1,"readings":{}}', "unsupported_version", "version 2"),
        (b'{"v":1,"seq":1,"samples":[]}', "invalid", "empty"),
        (b'{"v":1,"seq":1,"samples":[[1795000000000,"Bad Metric",1.0]]}', "invalid", "metric"),
        (b'{"v":1,"seq":-1,"samples":[[1795000000000,"t",1.0]]}', "out_of_range", "seq"),
        (b'{"v":1,"seq":1,"samples":[[1895000000000,"t",1.0]]}', "time_in_future", "$.samples[0]"),
        (b'{"v":1,"seq":1,"samples":[[5,"t",1.0]]}', "time_too_old", "2000"),
        (b'{"v":1,"seq":1,"samples":[[1795000000000,"t",1.0]],"extra":1}', "invalid", "extra"),
    ],
)
def test_bad_telemetry_is_refused_with_a_reason(payload: bytes, reason: str, mentions: str) -> None:
    with pytest.raises(ContractError) as err:
        decode(Kind.TELEMETRY, payload, NOW_MS)
    assert err.value.reason == reason
    assert mentions in err.value.message


def test_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(ContractError) as err:
        decode(Kind.TELEMETRY, b" " * (MAX_PAYLOAD_BYTES + 1), NOW_MS)
    assert err.value.reason == "too_large"


def test_small_clock_skew_is_tolerated() -> None:
    t = NOW_MS + MAX_FUTURE_SKEW_MS - 1
    msg = TelemetryBatch(v=1, seq=1, samples=[Sample(t, "t", 1.0)])
    assert decode(Kind.TELEMETRY, encode(msg), NOW_MS) == msg


def test_gps_out_of_range_coordinates_are_refused() -> None:
    bad = b'{"v":1,"seq":1,"fixes":[[1795000000000,181.0,45.0,5.0,null,null]]}'
    with pytest.raises(ContractError, match="out of range"):
        decode(Kind.GPS, bad, NOW_MS)


def test_topic_round_trip_and_refusals() -> None:
    t = Topic.parse("fm/v1/acme/dev/pump-7/ack/ping")
    assert (t.tenant, t.device_id, t.kind, t.name) == ("acme", "pump-7", Kind.ACK, "ping")
    assert str(t) == "fm/v1/acme/dev/pump-7/ack/ping"
    for bad in [
        "fm/v1/acme/dev/pump-7",
        "fm/v2/acme/dev/x/telemetry",
        "fm/v1/acme/dev/x/weather",
        "fm/v1/acme/dev/x/cmd",
        "fm/v1/acme/dev/x/telemetry/extra",
        "fm/v1/a+b/dev/x/gps",
    ]:
        with pytest.raises(ContractError):
            Topic.parse(bad)
