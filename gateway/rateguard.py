"""A token bucket per device, so one noisy or malicious device cannot starve the others.

Pure: the caller passes the clock. Defaults leave room for a normal device (a message
every few seconds per kind) and for an outbox replay after an outage (the burst), and
bound a flood to a steady rate. What is over the limit is neither stored nor receipted:
an honest agent keeps it in its outbox and sends it again after its receipt timeout, so
nothing is lost; a flood simply costs its sender. The number of buckets is bounded:
idle (full) buckets are dropped when there are too many.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_RATE_PER_S = 200.0
DEFAULT_BURST = 5000.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_s: float


class RateGuard:
    def __init__(
        self,
        rate_per_s: float = DEFAULT_RATE_PER_S,
        burst: float = DEFAULT_BURST,
        max_devices: int = 100_000,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_devices = max_devices
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, device: str, now_s: float) -> bool:
        """Take one token for `device`; False when it has none left."""
        b = self._buckets.get(device)
        if b is None:
            if len(self._buckets) >= self.max_devices:
                self._drop_idle(now_s)
            b = self._buckets[device] = _Bucket(self.burst, now_s)
        else:
            elapsed = now_s - b.updated_s
            if elapsed > 0:
                b.tokens = min(self.burst, b.tokens + elapsed * self.rate_per_s)
                b.updated_s = now_s
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return True
        return False

    def _drop_idle(self, now_s: float) -> None:
        full_after_s = self.burst / self.rate_per_s
        self._buckets = {
            k: b for k, b in self._buckets.items() if now_s - b.updated_s < full_after_s
        }
        if len(self._buckets) >= self.max_devices:  # all busy: forget the oldest half
            keep = sorted(self._buckets.items(), key=lambda kv: kv[1].updated_s)
            self._buckets = dict(keep[len(keep) // 2 :])


def device_of(topic: str) -> str:
    """The device segment of a device topic (fm/v1/{tenant}/dev/{device}/...), cheaply;
    the broker only lets a device publish on its own topics."""
    parts = topic.split("/", 5)
    return parts[4] if len(parts) > 4 else topic[:100]
