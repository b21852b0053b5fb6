"""Anomaly detector per equipment model, trained on healthy telemetry only.

Each metric is standardised within its operating regime; short trailing windows (level,
mean, spread, slope) describe the recent behaviour. The default method scores a row by
its largest robust z-score (median and MAD of the healthy rows) over those features; the
alternative is an IsolationForest on the same features. The alert threshold lies a
margin beyond a high quantile of the healthy rows' own scores (false-alarm rate stated).

Features use no exponential or expanding statistics, so the score of a sample needs only
the last `buffer_rows` samples of its asset: `OnlineScorer` keeps that many per asset and
scores each new sample at bounded cost.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
from sklearn.ensemble import IsolationForest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no stubs

from insights.maintenance.cmapss import FloatArray, Trajectories
from insights.maintenance.errors import DataFormatError, InsufficientDataError
from insights.maintenance.features import (
    SensorNormaliser,
    WindowSpec,
    fit_normaliser,
    trajectory_features,
    window_features,
)
from insights.maintenance.metrics import BoolArray
from insights.maintenance.rul import ModelCard, make_card

MODEL_KIND = "anomaly"
Method = Literal["robust_z", "isolation_forest"]


def _anomaly_spec() -> WindowSpec:
    return WindowSpec(
        mean_windows=(5,),
        std_windows=(10,),
        slope_windows=(10,),
        ewm_alphas=(),
        baseline_rows=0,
        include_position=False,
    )


@dataclass(frozen=True, slots=True)
class AnomalyConfig:
    method: Method = "robust_z"
    spec: WindowSpec = field(default_factory=_anomaly_spec)
    quantile: float = 0.999  # of healthy scores: about 1 false alarm per 1000 healthy rows
    margin: float = 1.3  # threshold = median + margin x (quantile - median) of healthy scores
    min_rows: int = 200
    n_estimators: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("robust_z", "isolation_forest"):
            raise DataFormatError(f"unknown anomaly method {self.method!r}")
        if not 0.5 < self.quantile < 1.0:
            raise DataFormatError(f"quantile must be in (0.5, 1), got {self.quantile}")
        if self.spec.ewm_alphas or self.spec.baseline_rows or self.spec.include_position:
            raise DataFormatError("anomaly features must use bounded windows only")

    @property
    def buffer_rows(self) -> int:
        s = self.spec
        return max((1, *s.mean_windows, *s.std_windows, *s.slope_windows))


@dataclass(slots=True)
class AnomalyDetector:
    config: AnomalyConfig
    normaliser: SensorNormaliser
    median: FloatArray
    scale: FloatArray
    forest: IsolationForest | None
    threshold: float
    card: ModelCard

    def _score_features(self, x: FloatArray) -> FloatArray:
        if self.forest is not None:
            with threadpool_limits(limits=1):
                score: FloatArray = -self.forest.score_samples(x)
            return score
        z: FloatArray = np.abs((x - self.median) / self.scale).max(axis=1)
        return z

    def score_rows(self, traj: Trajectories) -> FloatArray:
        """Anomaly score of every row (higher is stranger)."""
        return self._score_features(trajectory_features(traj, self.normaliser, self.config.spec))

    def flag_rows(self, traj: Trajectories) -> BoolArray:
        flags: BoolArray = self.score_rows(traj) > self.threshold
        return flags

    def explain(self, x_row: FloatArray, top: int = 3) -> list[tuple[str, float]]:
        """The features furthest from healthy, as (name, robust z), for an alert's text."""
        names = self.config.spec.feature_names(self.normaliser.channel_names)
        z = (x_row - self.median) / self.scale
        order = np.argsort(-np.abs(z))[:top]
        return [(names[i], float(z[i])) for i in order]


def fit_anomaly(
    healthy: Trajectories,
    config: AnomalyConfig | None = None,
    *,
    name: str = "anomaly",
    source: str = "unspecified",
) -> AnomalyDetector:
    """Learn normal behaviour from rows of healthy equipment of one model."""
    cfg = config or AnomalyConfig()
    if healthy.n_rows < cfg.min_rows:
        raise InsufficientDataError(
            f"need at least {cfg.min_rows} healthy samples to learn normal behaviour, "
            f"got {healthy.n_rows}"
        )
    normaliser = fit_normaliser(healthy, None)
    x = trajectory_features(healthy, normaliser, cfg.spec)
    # Skip each unit's first rows, whose windows are not yet full.
    warm = np.ones(healthy.n_rows, dtype=bool)
    for _, s in healthy.unit_slices():
        warm[s.start : min(s.stop, s.start + cfg.buffer_rows - 1)] = False
    if int(warm.sum()) < cfg.min_rows // 2:
        raise InsufficientDataError(
            f"healthy histories are too short: {int(warm.sum())} rows with full "
            f"{cfg.buffer_rows}-sample windows, need {cfg.min_rows // 2}"
        )
    xw = x[warm]
    median = np.median(xw, axis=0)
    mad = np.median(np.abs(xw - median), axis=0) * 1.4826
    spread = xw.std(axis=0)
    scale = np.where(mad > 1e-9, mad, np.where(spread > 1e-9, spread, 1.0))
    forest: IsolationForest | None = None
    if cfg.method == "isolation_forest":
        forest = IsolationForest(n_estimators=cfg.n_estimators, random_state=cfg.seed)
        with threadpool_limits(limits=1):
            forest.fit(xw)
    detector = AnomalyDetector(
        config=cfg,
        normaliser=normaliser,
        median=median,
        scale=scale,
        forest=forest,
        threshold=0.0,
        card=make_card(name, MODEL_KIND, healthy, asdict(cfg), source),
    )
    scores = detector._score_features(xw)
    mid = float(np.median(scores))
    detector.threshold = mid + cfg.margin * (float(np.quantile(scores, cfg.quantile)) - mid)
    detector.card = detector.card.with_metrics(
        threshold=detector.threshold,
        healthy_flag_rate=float(np.mean(scores > detector.threshold)),
    )
    return detector


class OnlineScorer:
    """Scores a live stream sample by sample, keeping a bounded buffer per asset."""

    def __init__(self, detector: AnomalyDetector, max_assets: int = 100_000) -> None:
        self._detector = detector
        self._rows = detector.config.buffer_rows
        self._max_assets = max_assets
        self._buffers: dict[str, deque[FloatArray]] = {}

    def update(self, asset_id: str, settings: FloatArray, sensors: FloatArray) -> float | None:
        """Add one sample; its score once the asset's window is full, else None."""
        det = self._detector
        channels = det.normaliser.channels(settings.reshape(1, -1), sensors.reshape(1, -1))[0]
        buf = self._buffers.get(asset_id)
        if buf is None:
            if len(self._buffers) >= self._max_assets:
                # forget the asset seen least recently (dicts keep insertion order)
                self._buffers.pop(next(iter(self._buffers)))
            buf = deque(maxlen=self._rows)
            self._buffers[asset_id] = buf
        else:
            self._buffers[asset_id] = self._buffers.pop(asset_id)
        buf.append(channels)
        if len(buf) < self._rows:
            return None
        x = window_features(np.vstack(buf), det.config.spec)[-1:]
        return float(det._score_features(x)[0])
