"""A forecaster pooled across many series: gradient-boosted trees on scaled lag windows.

One model learns from every series at once (M4's strongest hourly entries did the same):
each training example is a window of a series ending at an origin, divided by the mean of
its last `scale_window` values, with the horizon step as a feature, and the target is the
scaled value that many steps ahead (a *direct* model: no forecast is fed back in, so
errors do not compound over the horizon). Besides the most recent values the features
are the values at the same phase of earlier cycles (the same hour 1, 2, 3 and 7 days
before for hourly data), the window's spread and its last-cycle mean. Trained with the
absolute error, the loss closest to sMAPE/MASE on scaled values.

A second pooled model, `fit_recursive`, is one-step-ahead and fed its own forecasts back
(it sees the exact recent lags at every step; the direct model never compounds errors).
`median_of` combines the direct, the recursive and a per-series statistical forecast
point-wise: the three fail differently (pooled models know shapes shared across series,
the per-series method each series' own level and cycle), and a median is robust to any one
going astray. `combined` is the plain mean of a pooled and a per-series forecast.

Two more pooled models work in log space on the last values over their recent mean:
`fit_linear`, one ridge regression per horizon step (it extrapolates a trend the trees
flatten), and `fit_mlp`, a multi-layer perceptron on the same windows predicting every
step at once (it bends where the linear model cannot, smoothly where trees are stepwise).

Pure numpy/sklearn; single-threaded fits (the machine is shared).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no stubs

from insights.maintenance.errors import InsufficientDataError

FloatArray = npt.NDArray[np.float64]
Method = Callable[[FloatArray, int], FloatArray]


@dataclass(frozen=True, slots=True)
class PooledConfig:
    h: int  # the horizon the model is trained for
    period: int  # the main cycle (24 hourly, 52 weekly)
    window: int  # values of history each example sees
    scale_window: int  # values whose mean scales a window
    recent: int  # the most recent values used as features
    cycles: tuple[int, ...] = (1, 2, 3, 7)  # same phase this many periods back
    origins_per_series: int = 150
    horizons_per_origin: int = 8
    max_iter: int = 300
    learning_rate: float = 0.05
    seed: int = 0


def hourly_config(**kw: object) -> PooledConfig:
    base: dict[str, object] = {
        "h": 48,
        "period": 24,
        "window": 168,
        "scale_window": 168,
        "recent": 24,
        "cycles": (1, 2, 3, 7),
    }
    return PooledConfig(**{**base, **kw})  # type: ignore[arg-type]


def _features(win: FloatArray, h: npt.NDArray[np.int64], cfg: PooledConfig) -> FloatArray:
    n, w = win.shape
    rows = np.arange(n)
    cols = [win[:, -lag] for lag in range(1, min(cfg.recent, w) + 1)]
    for k in cfg.cycles:
        lag = np.clip(k * cfg.period - ((h - 1) % cfg.period), 1, w)
        cols.append(win[rows, w - lag])
    cols.append(h.astype(np.float64))
    cols.append(win[:, -cfg.scale_window :].std(axis=1))
    cols.append(win[:, -cfg.period :].mean(axis=1))
    return np.column_stack(cols)


def _window(
    y: FloatArray, end: int, cfg: PooledConfig | RecursiveConfig
) -> tuple[FloatArray, float]:
    """The scaled window of y ending before `end` (padded with its first value) and the
    scale."""
    w = y[max(0, end - cfg.window) : end]
    if w.size < cfg.window:
        w = np.concatenate([np.full(cfg.window - w.size, w[0]), w])
    s = float(np.mean(w[-cfg.scale_window :]))
    s = s if s > 0 else 1.0
    return w / s, s


@dataclass(slots=True)
class PooledModel:
    config: PooledConfig
    model: HistGradientBoostingRegressor

    def predict(self, series: Sequence[FloatArray]) -> FloatArray:
        """The next h values of every series (rows), one model call per horizon step."""
        cfg = self.config
        wins, scales = zip(*(_window(np.asarray(y), len(y), cfg) for y in series), strict=True)
        win = np.stack(wins)
        out = np.empty((len(series), cfg.h))
        with threadpool_limits(1):
            for k in range(1, cfg.h + 1):
                hk = np.full(len(series), k, dtype=np.int64)
                out[:, k - 1] = self.model.predict(_features(win, hk, cfg))
        return np.asarray(out * np.asarray(scales)[:, None], dtype=np.float64)


def fit_pooled(series: Sequence[FloatArray], cfg: PooledConfig) -> PooledModel:
    """Fit on windows drawn from every series (origins and horizon steps sampled with a
    fixed seed); refused when no series has a window and a horizon of history."""
    rng = np.random.default_rng(cfg.seed)
    wins: list[FloatArray] = []
    hs: list[int] = []
    ys: list[float] = []
    for y in series:
        a = np.asarray(y, dtype=np.float64)
        # a full window where the series is long enough, else half the series (padded)
        first = min(cfg.window, max(cfg.period, a.size // 2))
        origins = np.arange(first, a.size - cfg.h + 1)
        if origins.size == 0:
            continue
        if origins.size > cfg.origins_per_series:
            origins = rng.choice(origins, cfg.origins_per_series, replace=False)
        for p in origins:
            win, s = _window(a, int(p), cfg)
            steps = rng.choice(
                np.arange(1, cfg.h + 1), min(cfg.horizons_per_origin, cfg.h), replace=False
            )
            for k in steps:
                wins.append(win)
                hs.append(int(k))
                ys.append(float(a[p + k - 1]) / s)
    if len(ys) < 500:
        raise InsufficientDataError(
            f"{len(ys)} training windows; the pooled forecaster needs at least 500 "
            f"(series of at least {cfg.period + cfg.h} values)"
        )
    x = _features(np.stack(wins), np.asarray(hs, dtype=np.int64), cfg)
    model = HistGradientBoostingRegressor(
        loss="absolute_error",
        max_iter=cfg.max_iter,
        learning_rate=cfg.learning_rate,
        max_leaf_nodes=31,
        min_samples_leaf=50,
        random_state=cfg.seed,
    )
    with threadpool_limits(1):
        model.fit(x, np.asarray(ys))
    return PooledModel(cfg, model)


def combined(
    pooled: FloatArray, series: Sequence[FloatArray], method: Method, h: int
) -> FloatArray:
    """Mean of the pooled forecasts (rows) and the per-series method's, floored at 0."""
    own = np.stack([np.maximum(method(np.asarray(y), h), 0.0) for y in series])
    return np.asarray((np.maximum(pooled, 0.0) + own) / 2.0, dtype=np.float64)


# ------------------------------------------------------------ the recursive pooled model


@dataclass(frozen=True, slots=True)
class RecursiveConfig:
    """A one-step pooled model fed its own forecasts back: the direct model's partner
    (it sees the exact recent lags at every step, the direct one never compounds)."""

    lags: tuple[int, ...]
    scale_window: int
    recent_mean: int  # values of the level feature
    origins_per_series: int = 400
    max_iter: int = 300
    learning_rate: float = 0.05
    seed: int = 0

    @property
    def window(self) -> int:
        return max(self.lags)


def hourly_recursive(**kw: object) -> RecursiveConfig:
    lags = (*range(1, 25), 36, 48, 72, 96, 120, 144, 167, 168, 169, 192, 336)
    base: dict[str, object] = {"lags": lags, "scale_window": 168, "recent_mean": 24}
    return RecursiveConfig(**{**base, **kw})  # type: ignore[arg-type]


def weekly_recursive(**kw: object) -> RecursiveConfig:
    lags = (*range(1, 14), 26, 39, 52, 104)
    base: dict[str, object] = {"lags": lags, "scale_window": 13, "recent_mean": 4}
    return RecursiveConfig(**{**base, **kw})  # type: ignore[arg-type]


def _rec_features(win: FloatArray, cfg: RecursiveConfig) -> FloatArray:
    cols = [win[:, -lag] for lag in cfg.lags]
    cols.append(win[:, -cfg.recent_mean :].mean(axis=1))
    cols.append(win[:, -cfg.scale_window :].std(axis=1))
    return np.column_stack(cols)


@dataclass(slots=True)
class RecursiveModel:
    config: RecursiveConfig
    model: HistGradientBoostingRegressor

    def predict(self, series: Sequence[FloatArray], h: int) -> FloatArray:
        """The next h values of every series (rows), each step fed the previous ones."""
        cfg = self.config
        wins, scales = zip(*(_window(np.asarray(y), len(y), cfg) for y in series), strict=True)
        win = np.stack(wins)
        out = np.empty((len(series), h))
        with threadpool_limits(1):
            for k in range(h):
                x = _rec_features(win, cfg)
                step = self.model.predict(x) + x[:, 0]  # the model learns the change
                out[:, k] = step
                win = np.column_stack([win[:, 1:], step])
        return np.asarray(out * np.asarray(scales)[:, None], dtype=np.float64)


def fit_recursive(series: Sequence[FloatArray], cfg: RecursiveConfig) -> RecursiveModel:
    """Fit the one-step model on sampled origins of every series (fixed seed)."""
    rng = np.random.default_rng(cfg.seed)
    wins: list[FloatArray] = []
    ys: list[float] = []
    for y in series:
        a = np.asarray(y, dtype=np.float64)
        first = min(cfg.window, max(cfg.scale_window, a.size // 2))
        origins = np.arange(first, a.size)
        if origins.size > cfg.origins_per_series:
            origins = rng.choice(origins, cfg.origins_per_series, replace=False)
        for p in origins:
            win, s = _window(a, int(p), cfg)
            wins.append(win)
            ys.append(float(a[p]) / s)
    if len(ys) < 500:
        raise InsufficientDataError(f"{len(ys)} training windows; at least 500 are needed")
    x = _rec_features(np.stack(wins), cfg)
    model = HistGradientBoostingRegressor(
        loss="absolute_error",
        max_iter=cfg.max_iter,
        learning_rate=cfg.learning_rate,
        max_leaf_nodes=31,
        min_samples_leaf=50,
        random_state=cfg.seed,
    )
    with threadpool_limits(1):
        model.fit(x, np.asarray(ys) - x[:, 0])
    return RecursiveModel(cfg, model)


def median_of(*members: FloatArray) -> FloatArray:
    """Point-wise median of the members' forecasts (rows: series), floored at 0: robust
    to any one member going astray on a series."""
    return np.asarray(np.median(np.maximum(np.stack(members), 0.0), axis=0), dtype=np.float64)


# --------------------------------------------------- the pooled linear autoregression


@dataclass(frozen=True, slots=True)
class LinearConfig:
    """A global linear autoregression in log space (one ridge regression per horizon step,
    shared by every series): the log of the last `lags` values over the mean of the last
    `scale_window` predicts the log of the next h values over the same mean. Linear, so it
    extrapolates a trend the trees cannot; pooled, so each series borrows the others' shapes
    (Montero-Manso and Hyndman 2021: global linear AR models are competitive on M4)."""

    h: int
    lags: int
    scale_window: int
    origins_per_series: int = 400
    ridge: float = 1.0
    seed: int = 0


def weekly_linear(**kw: object) -> LinearConfig:
    base: dict[str, object] = {"h": 13, "lags": 104, "scale_window": 4}
    return LinearConfig(**{**base, **kw})  # type: ignore[arg-type]


def _lin_windows(
    a: FloatArray, ends: npt.NDArray[np.int64], cfg: LinearConfig | MlpConfig
) -> FloatArray:
    """The `lags` values before each end (padded with the first value), floored above 0."""
    idx = ends[:, None] + np.arange(-cfg.lags, 0)[None, :]
    w = np.where(idx < 0, a[0], a[np.clip(idx, 0, None)])
    return np.asarray(np.maximum(w, 1e-9), dtype=np.float64)


@dataclass(slots=True)
class LinearModel:
    config: LinearConfig
    coef: FloatArray  # (lags + 1) x h, the last row the intercept

    def predict(self, series: Sequence[FloatArray]) -> FloatArray:
        """The next h values of every series (rows)."""
        x, scales = _log_inputs(series, self.config)
        x1 = np.column_stack([x, np.ones(len(x))])
        return np.asarray(np.exp(x1 @ self.coef) * scales[:, None], dtype=np.float64)


def _log_windows(
    series: Sequence[FloatArray], cfg: LinearConfig | MlpConfig
) -> tuple[FloatArray, FloatArray]:
    """Sampled training windows of every positive series (fixed seed): the log of the last
    `lags` values over the mean of the last `scale_window` (rows of x), and the log of the
    next h values over the same mean (rows of y)."""
    rng = np.random.default_rng(cfg.seed)
    xs: list[FloatArray] = []
    ys: list[FloatArray] = []
    for y in series:
        a = np.asarray(y, dtype=np.float64)
        if a.size < cfg.h + 2 or np.any(a <= 0):
            continue  # the log space needs positive values
        first = min(cfg.lags, a.size // 2)
        ends = np.arange(first, a.size - cfg.h + 1)
        if ends.size > cfg.origins_per_series:
            ends = rng.choice(ends, cfg.origins_per_series, replace=False)
        w = _lin_windows(a, ends, cfg)
        s = w[:, -cfg.scale_window :].mean(axis=1, keepdims=True)
        xs.append(np.log(w / s))
        ys.append(np.log(a[ends[:, None] + np.arange(cfg.h)[None, :]] / s))
    n = sum(len(x) for x in xs)
    if n < 500:
        raise InsufficientDataError(f"{n} training windows; at least 500 are needed")
    return np.concatenate(xs), np.concatenate(ys)


def _log_inputs(
    series: Sequence[FloatArray], cfg: LinearConfig | MlpConfig
) -> tuple[FloatArray, FloatArray]:
    """The window every series ends with, as `_log_windows` makes them, and its scale."""
    xs: list[FloatArray] = []
    scales: list[float] = []
    for y in series:
        a = np.asarray(y, dtype=np.float64)
        w = _lin_windows(a, np.array([a.size]), cfg)
        s = float(w[0, -cfg.scale_window :].mean())
        xs.append(np.log(w[0] / s))
        scales.append(s)
    return np.stack(xs), np.asarray(scales, dtype=np.float64)


def fit_linear(series: Sequence[FloatArray], cfg: LinearConfig) -> LinearModel:
    """Ridge fit on sampled origins of every positive series (fixed seed); refused when
    too few windows have a horizon of history."""
    x, y = _log_windows(series, cfg)
    x1 = np.column_stack([x, np.ones(len(x))])
    reg = cfg.ridge * np.eye(x1.shape[1])
    reg[-1, -1] = 0.0  # the intercept is not shrunk
    coef = np.linalg.solve(x1.T @ x1 + reg, x1.T @ y)
    return LinearModel(cfg, np.asarray(coef, dtype=np.float64))


# ------------------------------------------------------- the pooled perceptron (MLP)


@dataclass(frozen=True, slots=True)
class MlpConfig:
    """A multi-layer perceptron shared by every series, on the linear autoregression's
    windows (the log of the last `lags` values over the mean of the last `scale_window`
    predicts the log of the next h over the same mean, all h at once). It bends where the
    linear model cannot and is smooth in the lags where trees are stepwise (pooled MLPs
    did well on M4: N-BEATS, Oreshkin et al. 2020). Fitted with `seeds` starting points,
    averaged: one net's forecast moves with its initialisation."""

    h: int
    lags: int
    scale_window: int
    hidden: tuple[int, ...] = (256, 128)
    alpha: float = 1e-3  # L2 penalty
    origins_per_series: int = 400
    max_iter: int = 200
    seeds: int = 3
    clip: float = 5.0  # log ratios beyond +-clip (a 150-fold change) are clipped
    seed: int = 0


def weekly_mlp(**kw: object) -> MlpConfig:
    base: dict[str, object] = {"h": 13, "lags": 104, "scale_window": 4}
    return MlpConfig(**{**base, **kw})  # type: ignore[arg-type]


@dataclass(slots=True)
class MlpModel:
    config: MlpConfig
    nets: list[MLPRegressor]

    def predict(self, series: Sequence[FloatArray]) -> FloatArray:
        """The next h values of every series (rows): the nets' mean in log space."""
        c = self.config.clip
        x, scales = _log_inputs(series, self.config)
        with threadpool_limits(1):
            logs = np.mean([n.predict(np.clip(x, -c, c)) for n in self.nets], axis=0)
        return np.asarray(np.exp(np.clip(logs, -c, c)) * scales[:, None], dtype=np.float64)


def fit_mlp(series: Sequence[FloatArray], cfg: MlpConfig) -> MlpModel:
    """Fit `seeds` nets on sampled origins of every positive series (early stopping on a
    tenth of the windows); refused when too few windows have a horizon of history."""
    x, y = _log_windows(series, cfg)
    x, y = np.clip(x, -cfg.clip, cfg.clip), np.clip(y, -cfg.clip, cfg.clip)
    nets: list[MLPRegressor] = []
    with threadpool_limits(1):
        for k in range(cfg.seeds):
            net = MLPRegressor(
                hidden_layer_sizes=cfg.hidden,
                alpha=cfg.alpha,
                batch_size=256,
                learning_rate_init=1e-3,
                max_iter=cfg.max_iter,
                early_stopping=True,
                n_iter_no_change=10,
                random_state=cfg.seed + k,
            )
            nets.append(net.fit(x, y))
    return MlpModel(cfg, nets)
