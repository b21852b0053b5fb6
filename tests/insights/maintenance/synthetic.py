"""Small synthetic run-to-failure fleets with a known, monotone degradation signal."""

from __future__ import annotations

import numpy as np

from insights.maintenance.cmapss import Trajectories


def degrading_fleet(
    n_units: int, *, seed: int = 0, life_range: tuple[int, int] = (80, 160)
) -> Trajectories:
    """Sensors: s1 rises with wear, s2 constant, s3 pure noise, s4 falls with wear."""
    rng = np.random.default_rng(seed)
    units, cycles, sensors = [], [], []
    for u in range(1, n_units + 1):
        life = int(rng.integers(*life_range))
        c = np.arange(1, life + 1)
        wear = np.clip((c - (life - 100)) / 100.0, 0.0, 1.0) ** 2  # knee 100 cycles out
        s1 = 10.0 + 5.0 * wear + rng.normal(0, 0.3, life) + rng.normal(0, 0.2)
        s2 = np.full(life, 3.0)
        s3 = rng.normal(0, 1.0, life)
        s4 = 50.0 - 8.0 * wear + rng.normal(0, 0.5, life)
        units.append(np.full(life, u))
        cycles.append(c)
        sensors.append(np.column_stack((s1, s2, s3, s4)))
    n = sum(len(c) for c in cycles)
    settings = np.column_stack(
        (rng.normal(0, 0.002, n), rng.normal(0, 0.0003, n), np.full(n, 100.0))
    )
    return Trajectories(
        unit=np.concatenate(units).astype(np.int64),
        cycle=np.concatenate(cycles).astype(np.int64),
        settings=settings,
        sensors=np.concatenate(sensors),
        sensor_names=("s1", "s2", "s3", "s4"),
    )
