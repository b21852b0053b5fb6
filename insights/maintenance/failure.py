"""Failure-within-N-rows classifier (e.g. "fails within 7 days" on daily rows).

Same causal window features as the RUL model; the label of a row is whether the unit
fails within `horizon` rows after it. Units that never fail in the data (censored) give
negative rows only. A HistGradientBoostingClassifier with balanced class weights learns
the probability; an alert is a probability at or above `threshold`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no stubs

from insights.maintenance.cmapss import FloatArray, Trajectories
from insights.maintenance.errors import DataFormatError, InsufficientDataError
from insights.maintenance.features import (
    SensorNormaliser,
    WindowSpec,
    fit_normaliser,
    trajectory_features,
)
from insights.maintenance.metrics import BoolArray
from insights.maintenance.rul import ModelCard, make_card

MODEL_KIND = "failure-within"


def _daily_spec() -> WindowSpec:
    return WindowSpec(
        mean_windows=(3, 7, 14),
        std_windows=(7,),
        slope_windows=(3, 7, 14),
        ewm_alphas=(0.3,),
        baseline_rows=14,
    )


@dataclass(frozen=True, slots=True)
class FailureConfig:
    horizon: float = 7.0  # rows (days for daily rows)
    threshold: float = 0.5
    spec: WindowSpec = field(default_factory=_daily_spec)
    max_iter: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    seed: int = 0
    threads: int = 1  # OpenMP threads per fit (see RulConfig.threads)
    min_units: int = 10
    min_failures: int = 5  # units that actually fail in the data

    def __post_init__(self) -> None:
        if self.horizon <= 0:
            raise DataFormatError(f"horizon must be positive, got {self.horizon}")
        if not 0.0 < self.threshold < 1.0:
            raise DataFormatError(f"threshold must be in (0, 1), got {self.threshold}")


def failure_labels(rows_to_failure: FloatArray, horizon: float) -> BoolArray:
    """True where the failure comes within `horizon` rows (inf: the unit never fails)."""
    labels: BoolArray = (rows_to_failure > 0) & (rows_to_failure <= horizon)
    return labels


@dataclass(slots=True)
class FailureModel:
    config: FailureConfig
    normaliser: SensorNormaliser
    estimator: HistGradientBoostingClassifier
    card: ModelCard

    def features(self, traj: Trajectories) -> FloatArray:
        return trajectory_features(traj, self.normaliser, self.config.spec)

    def probability_rows(self, traj: Trajectories) -> FloatArray:
        x = self.features(traj)
        with threadpool_limits(limits=self.config.threads):
            proba: FloatArray = self.estimator.predict_proba(x)[:, 1]
        return proba

    def alerts(self, traj: Trajectories) -> BoolArray:
        alert: BoolArray = self.probability_rows(traj) >= self.config.threshold
        return alert


def fit_failure(
    traj: Trajectories,
    rows_to_failure: FloatArray,
    config: FailureConfig | None = None,
    *,
    name: str = "failure-7d",
    source: str = "unspecified",
) -> FailureModel:
    """Train on histories; `rows_to_failure[i]` is how far row i is from its unit's failure."""
    cfg = config or FailureConfig()
    if rows_to_failure.shape != (traj.n_rows,):
        raise DataFormatError(
            f"rows_to_failure must have one value per row ({traj.n_rows}), "
            f"got shape {rows_to_failure.shape}"
        )
    slices = traj.unit_slices()
    if len(slices) < cfg.min_units:
        raise InsufficientDataError(
            f"need histories of at least {cfg.min_units} units, got {len(slices)}"
        )
    failing = sum(1 for _, s in slices if np.isfinite(rows_to_failure[s]).any())
    if failing < cfg.min_failures:
        raise InsufficientDataError(
            f"need at least {cfg.min_failures} units that fail in the data, got {failing}"
        )
    y = failure_labels(rows_to_failure, cfg.horizon)
    # Wear proxy for the health-index direction: nearness to failure, 0 when far or never.
    wear = np.where(
        np.isfinite(rows_to_failure),
        np.clip(1.0 - rows_to_failure / (4.0 * cfg.horizon), 0.0, 1.0),
        0.0,
    )
    normaliser = fit_normaliser(traj, wear, min_abs_corr=0.0)
    x = trajectory_features(traj, normaliser, cfg.spec)
    est = HistGradientBoostingClassifier(
        max_iter=cfg.max_iter,
        learning_rate=cfg.learning_rate,
        max_leaf_nodes=cfg.max_leaf_nodes,
        min_samples_leaf=cfg.min_samples_leaf,
        class_weight="balanced",
        early_stopping=False,
        random_state=cfg.seed,
    )
    with threadpool_limits(limits=cfg.threads):
        est.fit(x, y)
    params = asdict(cfg)
    params["channels"] = list(normaliser.channel_names)
    card = make_card(name, MODEL_KIND, traj, params, source)
    return FailureModel(config=cfg, normaliser=normaliser, estimator=est, card=card)
