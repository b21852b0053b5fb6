"""Training jobs: fit a model, measure it, save the version and record it.

Plain blocking functions: the CLI calls them directly; an async caller (an API handler)
runs them with `asyncio.to_thread` so training never blocks the event loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from insights.maintenance import registry
from insights.maintenance.anomaly import AnomalyConfig, fit_anomaly
from insights.maintenance.cmapss import read_cmapss
from insights.maintenance.errors import ModelNotFoundError
from insights.maintenance.failure import FailureConfig, failure_labels, fit_failure
from insights.maintenance.live import AnomalyMonitor
from insights.maintenance.metrics import classification
from insights.maintenance.rul import ModelCard, RulConfig, fit_rul
from insights.maintenance.simfleet import healthy_samples, model_settings, simulate_fleet
from insights.maintenance.validation import cross_validate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Trained:
    card: ModelCard
    artifact: Path


def models_dir(state_dir: Path) -> Path:
    return state_dir / "models"


def _store_and_record(model: Any, state_dir: Path, dsn: str | None, activate: bool) -> Trained:
    path = registry.ModelStore(models_dir(state_dir)).save(model)
    card: ModelCard = model.card
    if dsn is not None:
        with psycopg.connect(dsn) as conn:
            registry.record(conn, card, path)
            if activate:
                registry.activate(conn, card.name, card.version)
    return Trained(card=card, artifact=path)


def train_rul_cmapss(
    path: Path,
    *,
    state_dir: Path,
    dsn: str | None,
    name: str = "rul",
    config: RulConfig | None = None,
    cv_folds: int = 5,
    activate: bool = True,
) -> Trained:
    """RUL model on a C-MAPSS training file, with cross-validated RMSE in its card."""
    cfg = config or RulConfig()
    traj = read_cmapss(path)
    metrics: dict[str, float] = {}
    if cv_folds > 1:
        cv = cross_validate(traj, lambda t: fit_rul(t, cfg), cap=cfg.cap, folds=cv_folds)
        metrics = {"cv_rmse": cv.rmse, "cv_rmse_raw": cv.rmse_raw, "nasa_score": cv.nasa_score}
    model = fit_rul(traj, cfg, name=name, source=str(path))
    model.card = model.card.with_metrics(**metrics)
    return _store_and_record(model, state_dir, dsn, activate)


def train_failure_sim(
    *,
    state_dir: Path,
    dsn: str | None,
    n_assets: int = 300,
    days: int = 90,
    seed: int = 0,
    name: str = "failure-7d",
    config: FailureConfig | None = None,
    activate: bool = True,
) -> Trained:
    """Failure-within-N-days classifier on simulated run-to-failure histories.

    Trained on 70% of the assets; precision, recall and F1 of its alerts on the other 30%
    go into the card.
    """
    cfg = config or FailureConfig(seed=seed)
    fleet = simulate_fleet(n_assets, days, seed)
    traj, dtf = fleet.traj, fleet.days_to_failure
    units = np.array([u for u, _ in traj.unit_slices()], dtype=np.int64)
    held = np.random.default_rng(seed + 1).permutation(units)[: len(units) * 3 // 10]
    test_rows = np.isin(traj.unit, held)
    model = fit_failure(
        traj.select(~test_rows), dtf[~test_rows], cfg, name=name, source="firmware_sim.physics"
    )
    c = classification(
        model.alerts(traj.select(test_rows)), failure_labels(dtf[test_rows], cfg.horizon)
    )
    model.card = model.card.with_metrics(precision=c.precision, recall=c.recall, f1=c.f1)
    return _store_and_record(model, state_dir, dsn, activate)


def train_anomaly_sim(
    equipment_model: str,
    *,
    state_dir: Path,
    dsn: str | None,
    n_assets: int = 100,
    days: int = 60,
    seed: int = 0,
    activate: bool = True,
) -> Trained:
    """Anomaly detector of one equipment model on the healthy rows of simulated assets."""
    fleet = simulate_fleet(n_assets, days, seed)
    traj, dtf = fleet.traj, fleet.days_to_failure
    by_unit = {i + 1: a.model.name for i, a in enumerate(fleet.assets)}
    of_model = np.array([by_unit[int(u)] == equipment_model for u in traj.unit])
    healthy = of_model & ~(np.isfinite(dtf) & (dtf <= 35.0))  # far from any injected fault
    detector = fit_anomaly(
        traj.select(healthy),
        AnomalyConfig(min_rows=100),
        name=f"anomaly-{equipment_model}",
        source="firmware_sim.physics",
    )
    return _store_and_record(detector, state_dir, dsn, activate)


LIVE_PREFIX = "anomaly-live-"


def train_anomaly_live(
    equipment_model: str,
    *,
    state_dir: Path,
    dsn: str | None,
    n_assets: int = 6,
    hours: float = 48.0,
    interval_s: float = 10.0,
    seed: int = 0,
    activate: bool = True,
) -> Trained:
    """Live anomaly detector of one simulated equipment model, on raw healthy samples at
    the devices' sampling interval; the gateway scores every device of that model with it."""
    detector = fit_anomaly(
        healthy_samples(
            equipment_model, n_assets=n_assets, hours=hours, interval_s=interval_s, seed=seed
        ),
        name=f"{LIVE_PREFIX}{equipment_model}",
        source="firmware_sim.physics",
    )
    detector.card = replace(
        detector.card,
        params={
            **detector.card.params,
            "equipment_model": equipment_model,
            "interval_s": interval_s,
            "metrics": list(detector.normaliser.sensor_names),
            "settings": model_settings(equipment_model).tolist(),
        },
    )
    return _store_and_record(detector, state_dir, dsn, activate)


def load_live_monitors(conn: psycopg.Connection[Any]) -> dict[str, AnomalyMonitor]:
    """Monitors of the active live anomaly models, by equipment model. A model whose file
    is missing is skipped with a warning (scoring goes on with the others)."""
    rows = conn.execute(
        "SELECT name, version, artifact_path FROM maintenance_model WHERE active "
        "AND kind = 'anomaly' AND name LIKE %s ORDER BY name",
        (LIVE_PREFIX + "%",),
    ).fetchall()
    monitors: dict[str, AnomalyMonitor] = {}
    for name, version, path in rows:
        try:
            detector = registry.load_artifact(Path(path))
        except ModelNotFoundError as exc:
            log.warning("live model %s %s not loaded: %s", name, version, exc)
            continue
        params = detector.card.params
        monitors[str(params["equipment_model"])] = AnomalyMonitor(
            detector, tuple(params["metrics"]), np.asarray(params["settings"], dtype=np.float64)
        )
    return monitors
