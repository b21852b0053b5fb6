"""The phone's batching rules (phone.gps.GpsOutbox, the same as gps.js): latency first when
connected, batches when back online, resends keep their seq, the parked phone is quiet."""

from __future__ import annotations

from phone.gps import GpsOutbox, GpsPolicy, distance_m


def fix(t: int, lon: float, lat: float = 45.0) -> list[float | None]:
    return [t, lon, lat, 5.0, None, None]


def test_connected_a_fix_leaves_at_once_offline_they_leave_in_batches_once() -> None:
    box = GpsOutbox(GpsPolicy(max_fixes_per_message=100, window=2, receipt_timeout_ms=5000))
    t0 = 1_765_000_000_000
    assert box.add_fix(fix(t0, 4.0))
    (first,) = box.due(t0, connected=True)
    assert len(first["fixes"]) == 1 and first["seq"] >= t0
    box.receipted([first["seq"]])
    for i in range(1, 601):  # ten minutes offline at 1 Hz, 10 m apart
        box.add_fix(fix(t0 + 1000 * i, 4.0 + i * 10 / 78_850))
    assert box.due(t0 + 601_000, connected=False) == []
    sent = box.due(t0 + 601_000, connected=True)
    assert [len(m["fixes"]) for m in sent] == [100, 100]  # the window: two messages in flight
    # a lost receipt: after the timeout the same messages (same seqs) go again
    again = box.due(t0 + 607_000, connected=True)
    assert [m["seq"] for m in again] == [m["seq"] for m in sent]
    seen = []
    now = t0 + 608_000
    msgs = again
    while msgs:
        seen += [f[0] for m in msgs for f in m["fixes"]]
        box.receipted([m["seq"] for m in msgs])
        msgs = box.due(now, connected=True)
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 600
    assert box.waiting() == 0


def test_a_parked_phone_sends_two_fixes_a_minute() -> None:
    box = GpsOutbox()
    t0 = 1_765_000_000_000
    kept = sum(box.add_fix(fix(t0 + 1000 * i, 4.0 + (i % 2) * 1e-6)) for i in range(60))
    assert kept == 2
    assert distance_m((4.0, 45.0), (4.0 + 1e-6, 45.0)) < 1
