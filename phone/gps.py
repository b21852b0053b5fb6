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


R_EARTH_M = 6_371_008.8


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine metres between (lon, lat) points (as gps.js computes it)."""
    import math

    la1, la2 = math.radians(a[1]), math.radians(b[1])
    dla, dlo = la2 - la1, math.radians(b[0] - a[0])
    s = math.sin(dla / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin(dlo / 2) ** 2
    return 2 * R_EARTH_M * math.asin(min(1.0, math.sqrt(s)))


class GpsOutbox:
    """The PWA's batching rules (console/static/rep/gps.js) as a pure state machine, for
    simulated phones and tests: keep a fix (distance filter), seal waiting fixes into
    messages while the window allows, say which messages to publish now, forget what a
    receipt names. No I/O and no clock: times are passed in."""

    def __init__(self, policy: GpsPolicy = POLICY) -> None:
        self.p = policy
        self.fixes: list[list[Any]] = []
        self.outbox: dict[int, dict[str, Any]] = {}  # seq -> message, in seq order
        self.inflight: dict[int, int] = {}  # seq -> when last published (ms)
        self.last_seq = 0
        self.last_kept: list[Any] | None = None

    def add_fix(self, fix: list[Any]) -> bool:
        """Keep `fix` ([t_ms, lon, lat, acc, speed, heading]) unless the filter drops it."""
        last = self.last_kept
        if last is not None:
            if fix[0] <= last[0]:
                return False
            near = distance_m((last[1], last[2]), (fix[1], fix[2])) < self.p.min_move_m
            if near and fix[0] - last[0] < self.p.still_interval_ms:
                return False
        self.last_kept = fix
        self.fixes.append(fix)
        if len(self.fixes) > self.p.max_buffered_fixes:
            del self.fixes[: len(self.fixes) - self.p.max_buffered_fixes]
        return True

    def reconnected(self) -> None:
        self.inflight.clear()

    def due(self, now_ms: int, connected: bool) -> list[dict[str, Any]]:
        """Seal what the window allows and return the messages to publish now (marked sent)."""
        if not connected:
            return []
        p = self.p
        room = p.window - len(self.outbox)
        if room > 0 and self.fixes:
            take = self.fixes[: p.max_fixes_per_message * room]
            del self.fixes[: len(take)]
            for msg in seal(take, self.last_seq, now_ms, p.max_fixes_per_message):
                self.outbox[msg["seq"]] = msg
                self.last_seq = msg["seq"]
        flying = sum(1 for at in self.inflight.values() if now_ms - at < p.receipt_timeout_ms)
        out = []
        for seq, msg in self.outbox.items():
            at = self.inflight.get(seq)
            if at is not None and now_ms - at < p.receipt_timeout_ms:
                continue
            if flying >= p.window:
                break
            self.inflight[seq] = now_ms
            flying += 1
            out.append(msg)
        return out

    def receipted(self, seqs: list[int]) -> None:
        for s in seqs:
            self.outbox.pop(s, None)
            self.inflight.pop(s, None)

    def waiting(self) -> int:
        return len(self.fixes) + sum(len(m["fixes"]) for m in self.outbox.values())
