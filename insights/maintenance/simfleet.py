"""Run-to-failure histories of a simulated fleet, from the simulator's sensor physics.

The adapter between `firmware_sim.physics` (the only import of the simulator here) and
the maintenance models: hourly readings of each asset, computed vectorised without MQTT,
aggregated per day into `Trajectories` (daily mean and spread of each metric; the
equipment model's nominal operating point as the settings, so each model is a regime),
with the exact days to failure the simulator injected as labels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from firmware_sim.physics import (
    DAY_S,
    EQUIPMENT_MODELS,
    METRICS,
    AssetParams,
    random_asset,
    readings,
)
from insights.maintenance.cmapss import FloatArray, Trajectories
from insights.maintenance.errors import DataFormatError

SAMPLES_PER_DAY = 24
T0_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the start of every observed history


@dataclass(frozen=True, slots=True)
class FleetHistories:
    traj: Trajectories  # one row per asset-day: daily mean and std of each metric
    days_to_failure: FloatArray  # from the end of the row's day; inf for assets that do not fail
    assets: list[AssetParams]


def simulate_fleet(n_assets: int, days: int, seed: int) -> FleetHistories:
    """Hourly readings of each asset from the physics, aggregated per day.

    About half of the assets get an injected failure somewhere in the observed window (the
    simulator's `random_asset`); their history ends the day before it.
    """
    if n_assets < 1 or days < 3:
        raise DataFormatError(f"need at least 1 asset and 3 days, got {n_assets} and {days}")
    rng = np.random.default_rng(seed)
    units: list[FloatArray] = []
    cycles: list[FloatArray] = []
    settings: list[FloatArray] = []
    sensors: list[FloatArray] = []
    dtf: list[FloatArray] = []
    assets: list[AssetParams] = []
    hours = np.arange(days * SAMPLES_PER_DAY, dtype=np.float64) * (DAY_S / SAMPLES_PER_DAY)
    for i in range(n_assets):
        p = random_asset(
            rng, f"sim-{i:05d}", T0_S, failure_probability=0.5, horizon_days=float(days)
        )
        day_end = T0_S + (np.arange(days) + 1.0) * DAY_S
        observed = day_end <= p.failure_s  # whole days before the failure
        n_days = int(observed.sum())
        if n_days < 3:
            continue
        t = T0_S + hours[: n_days * SAMPLES_PER_DAY] + float(rng.uniform(0, 3600))
        r = readings(p, t)
        cols = []
        for m in METRICS:
            v = r[m].reshape(n_days, SAMPLES_PER_DAY)
            cols += [v.mean(axis=1), v.std(axis=1)]
        assets.append(p)
        unit = len(assets)
        units.append(np.full(n_days, unit, dtype=np.float64))
        cycles.append(np.arange(1, n_days + 1, dtype=np.float64))
        nominal = [p.model.temp_c, p.model.pressure_bar, p.model.current_a]
        settings.append(np.tile(np.array(nominal, dtype=np.float64), (n_days, 1)))
        sensors.append(np.column_stack(cols))
        dtf.append(np.asarray((p.failure_s - day_end[:n_days]) / DAY_S, dtype=np.float64))
    names = tuple(f"{m}:{stat}" for m in METRICS for stat in ("mean", "std"))
    traj = Trajectories(
        unit=np.concatenate(units).astype(np.int64),
        cycle=np.concatenate(cycles).astype(np.int64),
        settings=np.concatenate(settings),
        sensors=np.concatenate(sensors),
        sensor_names=names,
    )
    return FleetHistories(traj=traj, days_to_failure=np.concatenate(dtf), assets=assets)


def model_settings(equipment_model: str) -> FloatArray:
    """The operating settings a simulated equipment model's rows carry (its nominal point)."""
    m = EQUIPMENT_MODELS.get(equipment_model)
    if m is None:
        raise DataFormatError(
            f"unknown equipment model {equipment_model!r} "
            f"(simulated: {', '.join(sorted(EQUIPMENT_MODELS))})"
        )
    return np.array([m.temp_c, m.pressure_bar, m.current_a], dtype=np.float64)


def healthy_samples(
    equipment_model: str, *, n_assets: int, hours: float, interval_s: float, seed: int
) -> Trajectories:
    """Raw readings (one row per timestamp, a column per metric) of healthy simulated
    assets of one model: the training data of a live anomaly detector."""
    settings = model_settings(equipment_model)
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 / interval_s)
    if n_assets < 1 or n < 2:
        raise DataFormatError("need at least one asset and two samples")
    rows: list[FloatArray] = []
    for i in range(n_assets):
        p = random_asset(rng, f"healthy-{i}", T0_S, failure_probability=0.0)
        p = replace(p, model=EQUIPMENT_MODELS[equipment_model])
        t = T0_S + float(rng.uniform(0, DAY_S)) + np.arange(n) * interval_s
        r = readings(p, t)
        rows.append(np.column_stack([r[m] for m in METRICS]))
    total = n * n_assets
    return Trajectories(
        unit=np.repeat(np.arange(1, n_assets + 1), n).astype(np.int64),
        cycle=np.tile(np.arange(1, n + 1), n_assets).astype(np.int64),
        settings=np.tile(settings, (total, 1)),
        sensors=np.vstack(rows),
        sensor_names=METRICS,
    )
