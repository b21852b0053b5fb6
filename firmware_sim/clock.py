"""Simulated time: runs `speedup` times faster than the wall clock, never past it.

A fleet started with speedup K replays the last stretch of history quickly, then
continues live, so device timestamps are never in the future.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class SimClock:
    speedup: float = 1.0
    lead_s: float = 0.0  # how far in the past simulated time starts
    _start_wall_s: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.speedup < 1.0:
            raise ValueError("speedup must be >= 1")

    def now_s(self) -> float:
        wall = time.time()
        sim = self._start_wall_s - self.lead_s + (wall - self._start_wall_s) * self.speedup
        return min(sim, wall)

    def now_ms(self) -> int:
        return int(self.now_s() * 1000)
