"""A hostile device's repertoire: crafted payloads on its own topics, for tests and bench.

Each class is something a device with valid credentials can send and the gateway must
survive: nesting past the parser's recursion limit, control characters and NUL where
text is expected, lone surrogates, integers and times far out of range, oversized data,
and (when the database carries the matching CHECK constraint, see `DB_POISON_CHECK`) a
value the decoder accepts but the database refuses. Every payload carries `seq` where
the class allows it, so the gateway can still receipt it and an agent would stop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# A constraint a test or benchmark adds to its database: the decoder knows nothing of it,
# so a sample with this metric reaches the write and is refused there (CheckViolation).
DB_POISON_METRIC = "refused_by_db"
DB_POISON_CHECK = (
    "ALTER TABLE telemetry_latest ADD CONSTRAINT hostile_probe "
    f"CHECK (metric <> '{DB_POISON_METRIC}')"
)


@dataclass(frozen=True, slots=True)
class HostileMessage:
    suffix: str  # topic after fm/v1/{tenant}/dev/{device}/
    payload: bytes
    reason: str  # the dead letter's expected reason
    seq: int | None  # recoverable from the payload (so it is receipted)


def _j(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8", "surrogatepass")


def hostile_message(i: int, seq: int, now_ms: int, *, db_poison: bool = False) -> HostileMessage:
    """The i-th hostile message (classes in turn) with this seq; `db_poison` adds the
    class only a database with DB_POISON_CHECK refuses."""
    deep = "[" * 50_000 + "]" * 50_000
    classes = [
        ("status", f'{{"v":1,"online":true,"t":{now_ms},"x":{deep}}}'.encode(), "too_deep", None),
        (
            "event",
            f'{{"v":1,"seq":{seq},"events":[{{"id":"e{seq}","t":{now_ms},"type":"x",'
            f'"data":{{"d":{deep}}}}}]}}'.encode(),
            "too_deep",
            None,
        ),
        (
            "telemetry",
            f'{{"v":1,"seq":{seq},"samples":[[{now_ms},"t",1.0]],"x":{deep}}}'.encode(),
            "invalid",
            None,  # a telemetry payload this deep is not probed for its seq
        ),
        (
            "event",
            _j(
                {
                    "v": 1,
                    "seq": seq,
                    "events": [{"id": f"e\x00{seq}", "t": now_ms, "type": "x", "data": {}}],
                }
            ),
            "bad_text",
            seq,
        ),
        (
            "event",
            _j(
                {
                    "v": 1,
                    "seq": seq,
                    "events": [{"id": f"e{seq}", "t": now_ms, "type": "x", "data": {"k": "a\x00"}}],
                }
            ),
            "bad_text",
            seq,
        ),
        ("status", _j({"v": 1, "online": True, "t": now_ms, "fw": "1.0\x1b[2J"}), "bad_text", None),
        (
            "ack/ping",
            _j({"v": 1, "seq": seq, "id": "c1", "ok": True, "t": now_ms, "detail": "\x00"}),
            "bad_text",
            seq,
        ),
        (
            "event",
            _j(
                {
                    "v": 1,
                    "seq": seq,
                    "events": [
                        {"id": f"e{seq}", "t": now_ms, "type": "x", "data": {"s": "\ud800"}}
                    ],
                }
            ),
            "malformed_json",
            None,  # JSON with a lone surrogate does not parse: no seq
        ),
        (
            "telemetry",
            _j({"v": 1, "seq": 2**63 + seq, "samples": [[now_ms, "t", 1.0]]}),
            "out_of_range",
            None,
        ),
        (
            "telemetry",
            _j({"v": 1, "seq": seq, "samples": [[10**30, "t", 1.0]]}),
            "time_in_future",
            seq,
        ),
        (
            "telemetry",
            _j({"v": 1, "seq": seq, "samples": [[now_ms + 10**12, "t", 1.0]]}),
            "time_in_future",
            seq,
        ),
        (
            "ack/ping",
            _j({"v": 1, "seq": seq, "id": "c1", "ok": True, "t": -(10**15)}),
            "time_too_old",
            seq,
        ),
        (
            "gps",
            _j({"v": 1, "seq": seq, "fixes": [[now_ms, 1.0, 2.0, 1e300, 1e39, None]]}),
            "out_of_range",
            seq,
        ),
        (
            "event",
            _j(
                {
                    "v": 1,
                    "seq": seq,
                    "events": [{"id": f"e{seq}", "t": now_ms, "type": "x", "data": {"n": 10**40}}],
                }
            ),
            "out_of_range",
            seq,
        ),
        (
            "event",
            _j(
                {
                    "v": 1,
                    "seq": seq,
                    "events": [
                        {"id": f"e{seq}", "t": now_ms, "type": "x", "data": {"s": "x" * 20_000}}
                    ],
                }
            ),
            "too_large",
            seq,
        ),
        ("telemetry", b'{"v":1,"seq":%d,"samples":[[' % seq, "malformed_json", None),
    ]
    if db_poison:
        classes.append(
            (
                "telemetry",
                _j({"v": 1, "seq": seq, "samples": [[now_ms, DB_POISON_METRIC, 1.0]]}),
                "CheckViolation",
                seq,
            )
        )
    suffix, payload, reason, probed = classes[i % len(classes)]
    return HostileMessage(suffix, payload, reason, probed)
