"""Decode is total: whatever arrives becomes a message or a rejection, never an exception.

Property tests feed the decoder arbitrary bytes, arbitrary JSON (recursive strategies),
nesting far past the parser's recursion limit, integers past int64, control characters
and lone surrogates; every Decoded message must then be storable as it is.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.decode import Decoded, Inbound, Rejected, decode_inbound
from kernel.jsonlimits import text_problem
from telemetry.contracts import (
    MAX_FUTURE_SKEW_MS,
    MIN_TIME_MS,
    CommandAck,
    EventBatch,
    GpsBatch,
    Status,
    TelemetryBatch,
)

NOW_MS = 1_795_000_000_000
BASE = "fm/v1/acme/dev/d1"
TOPICS = [f"{BASE}/{k}" for k in ("telemetry", "gps", "event", "status", "ack/ping")]
# deadline=None: the machine is shared; these properties are about outcomes, not speed
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _inb(topic: str, payload: bytes) -> Inbound:
    return Inbound(topic, payload, mid=1, qos=1, received_ns=0)


def _storable_text(value: str) -> bool:
    return text_problem(value, multiline=True) is None


def _assert_storable(out: Decoded) -> None:
    """What a Decoded message promises the writer: text PostgreSQL takes, times in the
    window, finite numbers in range."""
    m = out.msg

    def in_window(t: int) -> bool:
        return MIN_TIME_MS <= t <= NOW_MS + MAX_FUTURE_SKEW_MS

    if isinstance(m, TelemetryBatch):
        assert 0 <= m.seq < 2**63
        for s in m.samples:
            assert in_window(s.t_ms) and math.isfinite(s.value) and _storable_text(s.metric)
    elif isinstance(m, GpsBatch):
        for f in m.fixes:
            assert in_window(f.t_ms) and -180 <= f.lon <= 180 and -90 <= f.lat <= 90
            assert 0 <= f.accuracy_m <= 1e6
    elif isinstance(m, EventBatch):
        for e in m.events:
            assert in_window(e.t) and _storable_text(e.id) and _storable_text(e.type)
            assert "\\u0000" not in json.dumps(e.data)
    elif isinstance(m, Status):
        assert in_window(m.t) and (m.fw is None or _storable_text(m.fw))
    elif isinstance(m, CommandAck):
        assert in_window(m.t) and _storable_text(m.id) and _storable_text(m.detail)


def _check(topic: str, payload: bytes) -> Decoded | Rejected:
    out = decode_inbound(_inb(topic, payload), NOW_MS)
    assert isinstance(out, Decoded | Rejected)
    if isinstance(out, Decoded):
        _assert_storable(out)
    else:
        assert out.reason and len(out.reason) < 40
        assert out.seq is None or 0 <= out.seq < 2**63
    return out


# ------------------------------------------------------------------ strategies

hostile_text = st.text(
    alphabet=st.characters(codec=None, categories=None), max_size=40
) | st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfff", "\x1b[31m", "\x7f", "é" * 70])
hostile_int = st.integers() | st.sampled_from(
    [2**63, -(2**63) - 1, 2**64, 10**30, -1, 0, NOW_MS + 10**9, MIN_TIME_MS - 1]
)
hostile_float = st.floats() | st.sampled_from([1e308, -1e308, 3.5e38, 1e-320])
scalars = st.none() | st.booleans() | hostile_int | hostile_float | hostile_text
any_json = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=30,
)


def _dumps(value: Any) -> bytes:
    # surrogatepass: lone surrogates arrive as \ud800 escapes, as a hostile device sends them
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


def _nested(depth: int, opener: str, leaf: str = "1") -> str:
    closer = "]" if opener == "[" else "}"
    if opener == "{":
        return '{"a":' * depth + leaf + closer * depth
    return opener * depth + leaf + closer * depth


# ------------------------------------------------------------------ properties


@FUZZ
@given(st.text(max_size=80), st.binary(max_size=300))
def test_any_topic_and_bytes_are_decoded_or_rejected(topic: str, payload: bytes) -> None:
    _check(topic, payload)


@FUZZ
@given(st.sampled_from(TOPICS), st.binary(max_size=2000))
def test_arbitrary_bytes_on_device_topics_are_decoded_or_rejected(
    topic: str, payload: bytes
) -> None:
    _check(topic, payload)


@FUZZ
@given(st.sampled_from(TOPICS), any_json)
def test_arbitrary_json_on_device_topics_is_decoded_or_rejected(topic: str, doc: Any) -> None:
    _check(topic, _dumps(doc))


@FUZZ
@given(
    st.sampled_from(TOPICS),
    st.integers(min_value=1, max_value=200_000),
    st.sampled_from(["[", "{"]),
    st.sampled_from(["payload", "unknown_field", "event_data", "sample", "seq"]),
)
def test_nesting_of_any_depth_anywhere_is_refused_not_crashed(
    topic: str, depth: int, opener: str, where: str
) -> None:
    deep = _nested(depth, opener)
    payload = {
        "payload": deep,
        "unknown_field": f'{{"v":1,"seq":1,"online":true,"t":{NOW_MS},"x":{deep}}}',
        "event_data": f'{{"v":1,"seq":1,"events":[{{"id":"e","t":{NOW_MS},"type":"x",'
        f'"data":{{"d":{deep}}}}}]}}',
        "sample": f'{{"v":1,"seq":1,"samples":[{deep}]}}',
        "seq": f'{{"v":1,"seq":{deep},"samples":[]}}',
    }[where]
    out = _check(topic, payload.encode())
    if depth > 40:
        assert isinstance(out, Rejected)


@FUZZ
@given(
    seq=hostile_int,
    t=hostile_int,
    metric=hostile_text,
    value=hostile_float,
    fw=hostile_text,
    detail=hostile_text,
    data=any_json,
    coords=st.tuples(hostile_float, hostile_float, hostile_float, hostile_float, hostile_float),
)
def test_well_formed_messages_with_hostile_leaves_are_storable_or_rejected(
    seq: int,
    t: int,
    metric: str,
    value: float,
    fw: str,
    detail: str,
    data: Any,
    coords: tuple[float, float, float, float, float],
) -> None:
    lon, lat, acc, speed, heading = coords
    docs = {
        "telemetry": {"v": 1, "seq": seq, "samples": [[t, metric, value]]},
        "gps": {"v": 1, "seq": seq, "fixes": [[t, lon, lat, acc, speed, heading]]},
        "event": {
            "v": 1,
            "seq": seq,
            "events": [{"id": metric or "e", "t": t, "type": fw or "x", "data": {"d": data}}],
        },
        "status": {"v": 1, "online": True, "t": t, "fw": fw},
        "ack/ping": {"v": 1, "seq": seq, "id": metric, "ok": False, "t": t, "detail": detail},
    }
    for kind, doc in docs.items():
        _check(f"{BASE}/{kind}", _dumps(doc))


# ------------------------------------------------------------------ examples


def test_rejection_keeps_device_and_recovers_seq_for_the_receipt() -> None:
    out = decode_inbound(
        _inb("fm/v1/acme/dev/d1/telemetry", b'{"v":1,"seq":9,"samples":"no"}'), NOW_MS
    )
    assert isinstance(out, Rejected)
    assert (out.device_id, out.seq, out.reason) == ("d1", 9, "invalid")


def test_cloud_to_device_kinds_are_not_accepted_from_devices() -> None:
    out = decode_inbound(_inb("fm/v1/acme/dev/d1/receipt", b'{"v":1,"seqs":[1]}'), NOW_MS)
    assert isinstance(out, Rejected) and out.reason == "bad_topic"


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "path"),
    [
        (
            "status",
            b'{"v":1,"online":true,"t":%d,"x":%s}' % (NOW_MS, b"[" * 5000 + b"]" * 5000),
            "too_deep",
            "$",
        ),
        ("status", b'{"v":1,"online":true,"t":%d,"fw":"1.0\\u0000"}' % NOW_MS, "bad_text", "$.fw"),
        (
            "status",
            b'{"v":1,"online":true,"t":%d,"fw":"%s"}' % (NOW_MS, b"x" * 65),
            "too_long",
            "$.fw",
        ),
        ("status", b'{"v":1,"online":true,"t":99999999999999}', "time_in_future", "$.t"),
        (
            "ack/ping",
            b'{"v":1,"seq":3,"id":"c\\u001b","ok":true,"t":%d}' % NOW_MS,
            "bad_text",
            "$.id",
        ),
        ("ack/ping", b'{"v":1,"seq":3,"id":"c","ok":true,"t":5}', "time_too_old", "$.t"),
        (
            "event",
            b'{"v":1,"seq":3,"events":[{"id":"e\\u0000","t":%d,"type":"x","data":{}}]}' % NOW_MS,
            "bad_text",
            "$.events[0].id",
        ),
        (
            "event",
            b'{"v":1,"seq":3,"events":[{"id":"e","t":%d,"type":"x","data":{"a":["\\ud800"]}}]}'
            % NOW_MS,
            "malformed_json",
            "surrogate",
        ),
        (
            "event",
            b'{"v":1,"seq":3,"events":[{"id":"e","t":%d,"type":"x","data":{"a":%d}}]}'
            % (NOW_MS, 2**63),
            "out_of_range",
            "$.events[0].data.a",
        ),
        (
            "event",
            b'{"v":1,"seq":3,"events":[{"id":"e","t":%d,"type":"x","data":{"a":"%s"}}]}'
            % (NOW_MS, b"x" * 17000),
            "too_large",
            "$.events[0].data",
        ),
        (
            "gps",
            b'{"v":1,"seq":3,"fixes":[[%d,1.0,2.0,1e300,null,null]]}' % NOW_MS,
            "out_of_range",
            "$.fixes[0].accuracy_m",
        ),
        (
            "gps",
            b'{"v":1,"seq":3,"fixes":[[%d,1.0,2.0,5.0,1e39,null]]}' % NOW_MS,
            "out_of_range",
            "$.fixes[0].speed_mps",
        ),
        (
            "gps",
            b'{"v":1,"seq":3,"fixes":[[%d,1.0,2.0,5.0,null,361]]}' % NOW_MS,
            "out_of_range",
            "$.fixes[0].heading_deg",
        ),
        (
            "telemetry",
            b'{"v":1,"seq":%d,"samples":[[%d,"t",1.0]]}' % (2**63, NOW_MS),
            "out_of_range",
            "$.seq",
        ),
        (
            "telemetry",
            b'{"v":1,"seq":1,"samples":[[%d,"t\\u0000",1.0]]}' % NOW_MS,
            "invalid",
            "$.samples[0].metric",
        ),
    ],
)
def test_each_limit_is_refused_with_its_reason_and_json_path(
    topic: str, payload: bytes, reason: str, path: str
) -> None:
    out = decode_inbound(_inb(f"{BASE}/{topic}", payload), NOW_MS)
    assert isinstance(out, Rejected)
    assert out.reason == reason, out.detail
    assert out.detail.startswith(path) or path in out.detail, out.detail


def test_a_signed_event_from_the_agent_passes_the_limits() -> None:
    payload = (
        b'{"v":1,"seq":3,"events":[{"id":"3f1c2b9e-6a8d-4c1e-9a57-2c1c4e0b8f11","t":%d,'
        b'"type":"visit.arrived","data":{"account":"acc-1","note":"line 1\\nline 2","n":[1,2.5]},'
        b'"sig":"q0xQ-Jd_3c9gAAAA"}]}' % NOW_MS
    )
    out = decode_inbound(_inb(f"{BASE}/event", payload), NOW_MS)
    assert isinstance(out, Decoded), out
