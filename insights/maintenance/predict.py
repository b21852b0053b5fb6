"""The failure-within-N-days model applied to a live asset's recent telemetry (pure + SQL).

`daily_trajectory` turns a device's raw samples of the last `window_days` into the daily
rows the model was trained on (daily mean and spread of each metric, the equipment model's
nominal point as settings; `insights.maintenance.simfleet` builds the same rows in
training). `predict_device` scores the newest row: the probability of a failure within the
model's horizon, and the reasons (the features whose replacement by the device's own
earliest-days value moves the probability most: what changed).
Bounded cost: at most `window_days` x 24 x metrics samples per device, one model call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from firmware_sim.physics import METRICS
from insights.maintenance.cmapss import Trajectories
from insights.maintenance.failure import FailureModel
from insights.maintenance.simfleet import model_settings

WINDOW_DAYS = 21
MIN_DAYS = 3


@dataclass(frozen=True, slots=True)
class DevicePrediction:
    device_id: str
    probability: float
    horizon_days: float
    predicted_failure_by: datetime
    days: int  # daily rows scored
    reasons: list[dict[str, Any]]


def daily_trajectory(
    conn: psycopg.Connection[Any], device_id: str, equipment_model: str, now: datetime
) -> Trajectories | None:
    """The device's daily rows over the window, oldest first; None with fewer than
    MIN_DAYS complete days."""
    rows = conn.execute(
        """
        SELECT date_trunc('day', time) AS day, metric, avg(value), stddev_pop(value)
        FROM telemetry_sample
        WHERE device_id = %s AND metric = ANY(%s) AND time >= %s AND time < %s
        GROUP BY 1, 2 ORDER BY 1
        """,
        (device_id, list(METRICS), now - timedelta(days=WINDOW_DAYS), now),
    ).fetchall()
    by_day: dict[datetime, dict[str, tuple[float, float]]] = {}
    for day, metric, mean, std in rows:
        by_day.setdefault(day, {})[metric] = (float(mean), float(std or 0.0))
    days = [d for d in sorted(by_day) if len(by_day[d]) == len(METRICS)]
    if len(days) < MIN_DAYS:
        return None
    sensors = np.array([[v for m in METRICS for v in by_day[d][m]] for d in days], dtype=np.float64)
    n = len(days)
    return Trajectories(
        unit=np.ones(n, dtype=np.int64),
        cycle=np.arange(1, n + 1, dtype=np.int64),
        settings=np.tile(model_settings(equipment_model), (n, 1)),
        sensors=sensors,
        sensor_names=tuple(f"{m}:{s}" for m in METRICS for s in ("mean", "std")),
    )


def predict_device(
    model: FailureModel, traj: Trajectories, device_id: str, now: datetime
) -> DevicePrediction:
    p_rows = model.probability_rows(traj)
    p = float(p_rows[-1])
    # reasons: each sensor column in turn set to the device's first-days level (its own
    # baseline); the drop in the newest row's probability is that sensor's pull
    base_rows = min(3, traj.n_rows - 1)
    reasons: list[dict[str, Any]] = []
    for j, name in enumerate(traj.sensor_names):
        moved = traj.sensors.copy()
        moved[base_rows:, j] = float(traj.sensors[:base_rows, j].mean())
        alt = Trajectories(traj.unit, traj.cycle, traj.settings, moved, traj.sensor_names)
        delta = p - float(model.probability_rows(alt)[-1])
        reasons.append(
            {
                "feature": name,
                "value": f"{traj.sensors[-1, j]:.3f}",
                "contribution": round(delta, 4),
            }
        )
    reasons.sort(key=lambda r: -abs(float(r["contribution"])))
    horizon = float(model.config.horizon)
    return DevicePrediction(
        device_id, p, horizon, now + timedelta(days=horizon), traj.n_rows, reasons[:3]
    )


def utcnow() -> datetime:
    return datetime.now(UTC)
