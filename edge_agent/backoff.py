"""Capped exponential backoff with full jitter (so a fleet does not reconnect in lockstep)."""

from __future__ import annotations

import random


def backoff_delay_s(
    attempt: int, base_s: float = 0.5, cap_s: float = 60.0, rng: random.Random | None = None
) -> float:
    """Delay before reconnect attempt number `attempt` (0-based): uniform in [0, min(cap, base*2^n)]."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    ceiling = min(cap_s, base_s * (2 ** min(attempt, 30)))
    return (rng or random).uniform(0.0, ceiling)
