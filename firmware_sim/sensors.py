"""Sources for the edge agent backed by the simulated physics and phone tracks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firmware_sim.physics import METRICS, AssetParams, readings
from firmware_sim.tracks import Track
from telemetry.contracts import Fix, Sample

MAX_CATCH_UP = 2_000  # readings per poll: after a long pause, skip ahead instead of flooding


@dataclass(slots=True)
class EquipmentSensor:
    """All four sensors of one asset, sampled every `interval_s` of device time."""

    params: AssetParams
    interval_s: float = 10.0
    _next_s: float | None = None

    def set_interval_s(self, interval_s: float) -> None:
        self.interval_s = interval_s

    def poll(self, now_ms: int) -> list[Sample]:
        now_s = now_ms / 1000.0
        if self._next_s is None:
            self._next_s = now_s
        if now_s < self._next_s:
            return []
        n = int((now_s - self._next_s) // self.interval_s) + 1
        if n > MAX_CATCH_UP:
            self._next_s = now_s - (MAX_CATCH_UP - 1) * self.interval_s
            n = MAX_CATCH_UP
        times = self._next_s + self.interval_s * np.arange(n)
        self._next_s = float(times[-1] + self.interval_s)
        values = readings(self.params, times)
        out: list[Sample] = []
        t_ms = (times * 1000).astype(np.int64).tolist()
        for metric in METRICS:
            col = values[metric].tolist()
            out.extend(Sample(t, metric, round(v, 4)) for t, v in zip(t_ms, col, strict=True))
        return out


@dataclass(slots=True)
class PhoneGps:
    """A rep's phone: fixes along a track with realistic noise and accuracy."""

    track: Track
    interval_s: float = 5.0
    seed: int = 0
    _next_s: float | None = None
    _rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def set_interval_s(self, interval_s: float) -> None:
        self.interval_s = interval_s

    def poll(self, now_ms: int) -> list[Fix]:
        now_s = now_ms / 1000.0
        if self._next_s is None:
            self._next_s = now_s
        out: list[Fix] = []
        while self._next_s <= now_s and len(out) < MAX_CATCH_UP:
            t = self._next_s
            lon, lat, speed, heading = (float(v) for v in self.track.at(t))
            accuracy = float(self._rng.uniform(3.0, 12.0))
            # Noise in metres, turned into degrees at this latitude.
            dx, dy = (float(v) for v in self._rng.normal(0.0, accuracy / 2.0, 2))
            lon += dx / (111_320.0 * math.cos(math.radians(lat)))
            lat += dy / 110_540.0
            out.append(
                Fix(
                    int(t * 1000),
                    round(lon, 7),
                    round(lat, 7),
                    round(accuracy, 1),
                    round(speed, 2),
                    round(heading, 1),
                )
            )
            self._next_s += self.interval_s
        return out


@dataclass(slots=True)
class PhoneVisits:
    """The rep's phone app: `visit.arrived` / `visit.departed` when a stay begins or ends."""

    track: Track
    site_ids: dict[tuple[float, float], str]
    _last_ms: int | None = None

    def poll(self, now_ms: int) -> list[tuple[int, str, dict[str, Any]]]:
        last, self._last_ms = self._last_ms, now_ms
        if last is None:
            return []
        out: list[tuple[int, str, dict[str, Any]]] = []
        for leg in self.track.legs:
            if not leg.is_stay or leg.start not in self.site_ids:
                continue
            site = {"site_id": self.site_ids[leg.start], "lon": leg.start[0], "lat": leg.start[1]}
            for t_s, kind in ((leg.t0_s, "visit.arrived"), (leg.t1_s, "visit.departed")):
                t_ms = int(t_s * 1000)
                if last < t_ms <= now_ms:
                    out.append((t_ms, kind, site))
        return sorted(out, key=lambda e: e[0])
