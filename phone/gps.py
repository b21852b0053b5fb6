"""The phone's GPS rules, in one place: the PWA reads them from `GET /api/v1/phone/devices`
and the benchmark's simulated phones use the same values, so both batch alike.

Why MQTT over WebSockets rather than an HTTP batch endpoint: the geofence engine keeps each
device's state in the gateway (geo.live), so a fix must reach the gateway like any device's
to get the same check-ins, visits, live map and re-plans; a second write path beside it
would split that state. A phone publishes to its own `gps` topic with its own broker account
(dynsec: it can publish only there and read only its own `receipt` and `cmd/+`), over one
long-lived connection (no per-fix request, header or token check), and deletes a batch
from IndexedDB only when the gateway's receipt says it is stored: the same exactly-once
contract as the edge agent. The page's token is used once, to fetch those credentials.

Batching: latency first while connected (the live map wants a fix within a second), a fix
is published as soon as it is read, one message per fix, at most WINDOW messages waiting
for their receipt; fixes read while offline (or beyond the window) wait in IndexedDB and
leave in batches of up to MAX_FIXES_PER_MESSAGE once the connection is back, oldest first.
A batch, once sealed with its seq, is never changed, so a resend after a lost receipt is
the same message and the gateway's (device_id, seq) key drops the copy. Seqs are
max(previous + 1, now in ms): increasing across restarts and even after the browser's
storage is cleared (unless the clock goes back).
Battery: no high accuracy when parked — a fix that moved less than MIN_MOVE_M and is
younger than STILL_INTERVAL_MS than the last one kept is skipped, so a phone at a site sends
two fixes a minute instead of sixty.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class GpsPolicy:
    max_fixes_per_message: int = 120
    window: int = 4  # messages published and not yet receipted
    receipt_timeout_ms: int = 15_000  # then the same message is published again
    min_move_m: float = 5.0
    still_interval_ms: int = 30_000
    max_buffered_fixes: int = 50_000  # about 14 hours at 1 Hz; the oldest go first beyond
    enable_high_accuracy: bool = True
    maximum_age_ms: int = 1_000
    timeout_ms: int = 30_000
    keepalive_s: int = 60

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


POLICY = GpsPolicy()


def gps_topic(tenant: str, device_id: str) -> str:
    return f"fm/v1/{tenant}/dev/{device_id}/gps"


def receipt_topic(tenant: str, device_id: str) -> str:
    return f"fm/v1/{tenant}/dev/{device_id}/receipt"


def status_topic(tenant: str, device_id: str) -> str:
    return f"fm/v1/{tenant}/dev/{device_id}/status"


def next_seq(previous: int, now_ms: int) -> int:
    """The next message seq: increasing, and past the clock (survives lost storage)."""
    return max(previous + 1, now_ms)


def seal(
    fixes: list[list[Any]], previous_seq: int, now_ms: int, limit: int
) -> list[dict[str, Any]]:
    """Waiting fixes ([t_ms, lon, lat, acc, speed, heading], oldest first) as sealed GPS
    messages of at most `limit` fixes each, with increasing seqs (the PWA does the same)."""
    out: list[dict[str, Any]] = []
    seq = previous_seq
    for i in range(0, len(fixes), limit):
        seq = next_seq(seq, now_ms)
        out.append({"v": 1, "seq": seq, "fixes": fixes[i : i + limit]})
    return out
