"""Remaining-useful-life model: windowed features + gradient-boosted trees (scikit-learn).

Trained on every cycle of run-to-failure trajectories with a piecewise-linear target
(remaining cycles, clipped at `cap`: a new unit's life is not predictable from its
sensors, only the wear once it shows). The model is an average of a few
HistGradientBoostingRegressor fits that each see a random half of the features per split.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no stubs

from insights.cards import ModelCard as ModelCard  # moved there; re-exported for old imports
from insights.maintenance.cmapss import FloatArray, IntArray, Trajectories
from insights.maintenance.errors import DataFormatError, InsufficientDataError
from insights.maintenance.features import (
    SensorNormaliser,
    WindowSpec,
    fit_normaliser,
    last_row_index,
    life_fraction,
    rul_targets,
    trajectory_features,
)

MODEL_KIND = "rul"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class RulConfig:
    """Hyper-parameters; defaults were chosen by cross-validation on training data only."""

    cap: float = 125.0
    spec: WindowSpec = field(default_factory=WindowSpec)
    n_models: int = 2
    max_iter: int = 400
    learning_rate: float = 0.05
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    max_features: float = 0.5
    seed: int = 0
    # OpenMP threads per fit. One by default: on a small shared machine, spinning OpenMP
    # workers competing with other processes made a fit ten times slower than one thread.
    threads: int = 1
    min_units: int = 5  # run-to-failure units needed to train
    min_rows_per_unit: int = 10

    def __post_init__(self) -> None:
        if self.cap <= 0:
            raise DataFormatError(f"cap must be positive, got {self.cap}")
        if self.n_models < 1:
            raise DataFormatError(f"n_models must be at least 1, got {self.n_models}")
        if not 0.0 < self.max_features <= 1.0:
            raise DataFormatError(f"max_features must be in (0, 1], got {self.max_features}")


def data_fingerprint(traj: Trajectories) -> str:
    h = hashlib.sha256()
    for arr in (traj.unit, traj.cycle, traj.settings, traj.sensors):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def make_card(
    name: str, kind: str, traj: Trajectories, params: dict[str, Any], source: str
) -> ModelCard:
    now = datetime.now(UTC)
    digest = data_fingerprint(traj)
    return ModelCard(
        name=name,
        kind=kind,
        version=f"{now:%Y%m%dT%H%M%S%fZ}-{digest[:8]}",
        created_at=now.isoformat(),
        params=json.loads(json.dumps(params)),  # plain JSON types, as stored and read back
        data={
            "source": source,
            "units": len(traj.unit_slices()),
            "rows": traj.n_rows,
            "sensors": list(traj.sensor_names),
            "sha256": digest,
        },
    )


@dataclass(slots=True)
class RulModel:
    """A fitted model: normaliser, estimators and card. Predicts RUL at any row."""

    config: RulConfig
    normaliser: SensorNormaliser
    estimators: list[HistGradientBoostingRegressor]
    feature_names: list[str]
    card: ModelCard

    def features(self, traj: Trajectories) -> FloatArray:
        if traj.sensors.shape[1] != len(self.normaliser.sensor_names):
            raise DataFormatError(
                f"model was trained on {len(self.normaliser.sensor_names)} sensors, "
                f"data has {traj.sensors.shape[1]}"
            )
        return trajectory_features(traj, self.normaliser, self.config.spec)

    def predict_features(self, x: FloatArray) -> FloatArray:
        with threadpool_limits(limits=self.config.threads):
            pred: FloatArray = np.mean([est.predict(x) for est in self.estimators], axis=0)
        clipped: FloatArray = np.clip(pred, 0.0, self.config.cap)
        return clipped

    def predict_rows(self, traj: Trajectories) -> FloatArray:
        """Predicted RUL after every row (causal: each uses only rows up to it)."""
        return self.predict_features(self.features(traj))

    def predict_last(self, traj: Trajectories) -> tuple[IntArray, FloatArray]:
        """(unit ids, predicted RUL after each unit's last observed row)."""
        x = self.features(traj)[last_row_index(traj)]
        units = np.array([u for u, _ in traj.unit_slices()], dtype=np.int64)
        return units, self.predict_features(x)


def check_training_data(traj: Trajectories, config: RulConfig) -> None:
    """Refuse data too small to learn a life model from, naming the reason."""
    slices = traj.unit_slices()
    if len(slices) < config.min_units:
        raise InsufficientDataError(
            f"need run-to-failure histories of at least {config.min_units} units, got {len(slices)}"
        )
    short = [u for u, s in slices if s.stop - s.start < config.min_rows_per_unit]
    if len(slices) - len(short) < config.min_units:
        raise InsufficientDataError(
            f"need at least {config.min_units} units with {config.min_rows_per_unit}+ rows "
            f"each, got {len(slices) - len(short)}"
        )


def fit_rul(
    traj: Trajectories,
    config: RulConfig | None = None,
    *,
    name: str = "rul",
    source: str = "unspecified",
) -> RulModel:
    """Train on run-to-failure trajectories: every unit's last row is its failure."""
    cfg = config or RulConfig()
    check_training_data(traj, cfg)
    normaliser = fit_normaliser(traj, life_fraction(traj))
    x = trajectory_features(traj, normaliser, cfg.spec)
    y = rul_targets(traj, cfg.cap)
    estimators = []
    for i in range(cfg.n_models):
        est = HistGradientBoostingRegressor(
            max_iter=cfg.max_iter,
            learning_rate=cfg.learning_rate,
            max_leaf_nodes=cfg.max_leaf_nodes,
            min_samples_leaf=cfg.min_samples_leaf,
            l2_regularization=cfg.l2_regularization,
            max_features=cfg.max_features if cfg.n_models > 1 else 1.0,
            early_stopping=False,
            random_state=cfg.seed + i,
        )
        with threadpool_limits(limits=cfg.threads):
            est.fit(x, y)
        estimators.append(est)
    params = asdict(cfg)
    params["channels"] = list(normaliser.channel_names)
    params["regimes"] = normaliser.regimes.n_regimes
    card = make_card(name, MODEL_KIND, traj, params, source)
    return RulModel(
        config=cfg,
        normaliser=normaliser,
        estimators=estimators,
        feature_names=cfg.spec.feature_names(normaliser.channel_names),
        card=card,
    )


@dataclass(slots=True)
class RawForestBaseline:
    """The reference method: a random forest on the raw standardised sensors of one row."""

    cap: float
    normaliser: SensorNormaliser
    forest: RandomForestRegressor

    def features(self, traj: Trajectories) -> FloatArray:
        return self.normaliser.standardise(traj.settings, traj.sensors)[:, self.normaliser.selected]

    def predict_features(self, x: FloatArray) -> FloatArray:
        pred: FloatArray = np.clip(self.forest.predict(x), 0.0, self.cap)
        return pred


def fit_raw_forest_baseline(
    traj: Trajectories, *, cap: float = 125.0, n_estimators: int = 100, seed: int = 0
) -> RawForestBaseline:
    normaliser = fit_normaliser(traj, life_fraction(traj))
    forest = RandomForestRegressor(
        n_estimators=n_estimators, min_samples_leaf=5, n_jobs=1, random_state=seed
    )
    baseline = RawForestBaseline(cap=cap, normaliser=normaliser, forest=forest)
    forest.fit(baseline.features(traj), rul_targets(traj, cap))
    return baseline
