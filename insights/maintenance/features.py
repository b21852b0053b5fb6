"""Pure feature engineering for run-to-failure time series (numpy only, no I/O).

Three steps, each fitted on training data and then applied unchanged to new data:

1. Operating regimes: units run under a few discrete operating conditions (altitude, Mach,
   throttle for a turbofan; load and speed for a pump). `fit_regimes` finds them from the
   operational settings by splitting each setting where its sorted values leave a large
   gap, so data with one condition gives one regime and data with six gives six, with no
   column indices hard-coded.
2. Normalisation and selection: each sensor is standardised within its regime; sensors
   that are constant, or that do not trend with wear in the training data, are dropped; a
   health index (correlation-weighted sum of the kept sensors, rising with wear) is added
   as an extra channel.
3. Causal trailing-window features per unit: the value at time t uses only rows up to t,
   so the features at a cut point equal those of the trajectory truncated there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from insights.maintenance.cmapss import FloatArray, IntArray, Trajectories
from insights.maintenance.errors import DataFormatError, InsufficientDataError

_EPS = 1e-9


# --------------------------------------------------------------------------- regimes


@dataclass(frozen=True, slots=True)
class RegimeModel:
    """Operating regimes as centres in settings space; rows go to the nearest centre."""

    centres: FloatArray  # (k, n_settings)
    scale: FloatArray  # (n_settings,) range of each setting, 1 where constant

    @property
    def n_regimes(self) -> int:
        return int(self.centres.shape[0])

    def assign(self, settings: FloatArray) -> IntArray:
        if settings.ndim != 2 or settings.shape[1] != self.centres.shape[1]:
            raise DataFormatError(
                f"settings must have {self.centres.shape[1]} columns, got shape {settings.shape}"
            )
        if self.n_regimes == 1:
            return np.zeros(settings.shape[0], dtype=np.int64)
        scaled = settings / self.scale
        centres = self.centres / self.scale
        dist = ((scaled[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        nearest: IntArray = np.argmin(dist, axis=1).astype(np.int64)
        return nearest


def _split_column(values: FloatArray, gap_fraction: float, min_share: float) -> IntArray:
    """Segment ids of one setting column: split where sorted values jump by a large gap."""
    n = values.shape[0]
    order = np.argsort(values, kind="stable")
    sorted_v = values[order]
    span = float(sorted_v[-1] - sorted_v[0])
    seg_sorted = np.zeros(n, dtype=np.int64)
    if span > _EPS:
        gaps = np.diff(sorted_v)
        min_rows = max(1, int(np.ceil(min_share * n)))
        cut_positions = [
            int(i) + 1
            for i in np.flatnonzero(gaps > gap_fraction * span)
            # both sides must hold a real share of the rows (an outlier is not a regime)
            if int(i) + 1 >= min_rows and n - (int(i) + 1) >= min_rows
        ]
        for pos in cut_positions:
            seg_sorted[pos:] += 1
    seg = np.empty(n, dtype=np.int64)
    seg[order] = seg_sorted
    return seg


def _explained_share(segments: IntArray, sensors: FloatArray) -> float:
    """Mean over varying sensors of the share of variance explained by the segments (eta²)."""
    total = sensors.var(axis=0)
    varying = total > _EPS * np.maximum(1.0, np.abs(sensors.mean(axis=0)))
    if not varying.any():
        return 0.0
    x = sensors[:, varying]
    grand = x.mean(axis=0)
    between = np.zeros(x.shape[1])
    for k in np.unique(segments):
        rows = x[segments == k]
        between += rows.shape[0] * (rows.mean(axis=0) - grand) ** 2
    share = between / x.shape[0] / total[varying]
    return float(share.mean())


def fit_regimes(
    settings: FloatArray,
    sensors: FloatArray | None = None,
    *,
    gap_fraction: float = 0.05,
    min_share: float = 0.005,
    min_explained: float = 0.2,
) -> RegimeModel:
    """Find discrete operating regimes from operational settings (rows x settings).

    A setting column is split where its sorted values leave a gap wider than
    `gap_fraction` of its range. Quantised noise (a setting recorded to a few decimals)
    also shows such gaps, so with `sensors` given a column's split is kept only if it
    explains at least `min_explained` of the sensors' variance: true operating conditions
    move the sensors, noise in the settings does not.
    """
    if settings.ndim != 2 or settings.shape[0] == 0:
        raise DataFormatError(f"settings must be a non-empty 2-D array, got {settings.shape}")
    n, d = settings.shape
    if d == 0:
        return RegimeModel(centres=np.zeros((1, 0)), scale=np.ones(0))
    if sensors is not None and sensors.shape[0] != n:
        raise DataFormatError("settings and sensors must have the same rows")
    columns = []
    for j in range(d):
        seg = _split_column(settings[:, j], gap_fraction, min_share)
        if seg.max() == 0:
            continue
        if sensors is not None and _explained_share(seg, sensors) < min_explained:
            continue
        columns.append(seg)
    if not columns:
        return RegimeModel(centres=settings.mean(axis=0, keepdims=True), scale=np.ones(d))
    codes = np.stack(columns, axis=1)
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    keep = np.flatnonzero(counts >= max(1, min_share * n))
    if keep.size == 0:
        keep = np.array([int(np.argmax(counts))])
    centres = np.stack([settings[inverse == k].mean(axis=0) for k in keep])
    span = settings.max(axis=0) - settings.min(axis=0)
    scale = np.where(span > _EPS, span, 1.0)
    return RegimeModel(centres=centres, scale=scale)


# ------------------------------------------------------------------- normalisation


@dataclass(frozen=True, slots=True)
class SensorNormaliser:
    """Per-regime standardisation, the kept sensors, and the health-index weights."""

    regimes: RegimeModel
    mean: FloatArray  # (k, n_sensors)
    std: FloatArray  # (k, n_sensors)
    selected: IntArray  # indices of kept sensors
    hi_weights: FloatArray  # (n_selected,) signed, sum of |w| = 1; the index rises with wear
    sensor_names: tuple[str, ...]

    @property
    def channel_names(self) -> tuple[str, ...]:
        return (*(self.sensor_names[i] for i in self.selected), "hi")

    def standardise(self, settings: FloatArray, sensors: FloatArray) -> FloatArray:
        """All sensors standardised within their regime, shape (n, n_sensors)."""
        if sensors.ndim != 2 or sensors.shape[1] != self.mean.shape[1]:
            raise DataFormatError(
                f"expected {self.mean.shape[1]} sensor columns, got shape {sensors.shape}"
            )
        regime = self.regimes.assign(settings)
        return (sensors - self.mean[regime]) / self.std[regime]

    def channels(self, settings: FloatArray, sensors: FloatArray) -> FloatArray:
        """Kept sensors (standardised) plus the health index, shape (n, n_selected + 1)."""
        z = self.standardise(settings, sensors)[:, self.selected]
        hi = z @ self.hi_weights
        return np.column_stack((z, hi))


def life_fraction(traj: Trajectories) -> FloatArray:
    """Cycle divided by the unit's last cycle: 0 new, 1 at failure (run-to-failure data)."""
    out = np.empty(traj.n_rows, dtype=np.float64)
    for _, s in traj.unit_slices():
        c = traj.cycle[s].astype(np.float64)
        out[s] = c / max(float(c[-1]), 1.0)
    return out


def fit_normaliser(
    traj: Trajectories,
    wear: FloatArray | None = None,
    *,
    min_abs_corr: float = 0.1,
    min_distinct: int = 5,
) -> SensorNormaliser:
    """Fit regime statistics and choose sensors.

    `wear` is a per-row wear proxy (e.g. `life_fraction` of run-to-failure data). With it,
    sensors whose correlation with wear is below `min_abs_corr` are dropped; without it
    (healthy data only), every non-constant sensor is kept and the health index is their
    mean absolute deviation direction-free average.
    """
    regimes = fit_regimes(traj.settings, traj.sensors)
    regime = regimes.assign(traj.settings)
    k, n_sensors = regimes.n_regimes, traj.sensors.shape[1]
    mean = np.zeros((k, n_sensors))
    std = np.ones((k, n_sensors))
    usable = np.zeros(n_sensors, dtype=bool)
    for r in range(k):
        rows = traj.sensors[regime == r]
        if rows.shape[0] < 2:
            continue
        mean[r] = rows.mean(axis=0)
        sd = rows.std(axis=0)
        distinct = np.array([np.unique(rows[:, j]).size for j in range(n_sensors)])
        ok = (sd > _EPS * np.maximum(1.0, np.abs(mean[r]))) & (distinct >= min_distinct)
        std[r] = np.where(ok, sd, 1.0)
        usable |= ok
    z = (traj.sensors - mean[regime]) / std[regime]
    if wear is not None:
        if wear.shape != (traj.n_rows,):
            raise DataFormatError(f"wear must have one value per row, got shape {wear.shape}")
        corr = np.zeros(n_sensors)
        wc = wear - wear.mean()
        for j in np.flatnonzero(usable):
            zc = z[:, j] - z[:, j].mean()
            denom = float(np.sqrt((zc**2).sum() * (wc**2).sum()))
            corr[j] = float((zc * wc).sum()) / denom if denom > 0 else 0.0
        selected = np.flatnonzero(usable & (np.abs(corr) >= min_abs_corr))
        weights = corr[selected]
    else:
        selected = np.flatnonzero(usable)
        weights = np.ones(selected.size)
    if selected.size == 0:
        raise InsufficientDataError(
            "no sensor varies"
            + (" with wear" if wear is not None else "")
            + " in the training data: nothing to learn from"
        )
    weights = weights / np.abs(weights).sum()
    return SensorNormaliser(
        regimes=regimes,
        mean=mean,
        std=std,
        selected=selected.astype(np.int64),
        hi_weights=weights,
        sensor_names=traj.sensor_names,
    )


# ------------------------------------------------------------------ window features


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Which trailing-window statistics to compute for every channel."""

    mean_windows: tuple[int, ...] = (5, 10, 20, 30)
    std_windows: tuple[int, ...] = (10, 30)
    slope_windows: tuple[int, ...] = (10, 20, 50)
    ewm_alphas: tuple[float, ...] = (0.1, 0.3)
    baseline_rows: int = 20  # the unit's own early mean; drift = slow EWM minus it
    include_position: bool = True  # the number of rows seen so far (the cycle count)

    def feature_names(self, channels: tuple[str, ...]) -> list[str]:
        names: list[str] = ["position"] if self.include_position else []
        for ch in channels:
            names.append(f"{ch}:last")
            names += [f"{ch}:mean{w}" for w in self.mean_windows]
            names += [f"{ch}:std{w}" for w in self.std_windows]
            names += [f"{ch}:slope{w}" for w in self.slope_windows]
            names += [f"{ch}:ewm{a:g}" for a in self.ewm_alphas]
            if self.baseline_rows > 0:
                names.append(f"{ch}:drift")
        return names


def _window_sums(cs: FloatArray, w: int) -> tuple[FloatArray, FloatArray]:
    """Sums over the trailing window of length min(w, t+1) from a zero-led cumsum."""
    n = cs.shape[0] - 1
    hi = np.arange(1, n + 1)
    lo = np.maximum(hi - w, 0)
    return cs[hi] - cs[lo], (hi - lo).astype(np.float64)


def ewm(x: FloatArray, alpha: float) -> FloatArray:
    """Exponentially weighted mean down the rows, started at the first row."""
    if not 0.0 < alpha <= 1.0:
        raise DataFormatError(f"ewm alpha must be in (0, 1], got {alpha}")
    out = np.empty_like(x)
    if x.shape[0] == 0:
        return out
    acc = x[0].copy()
    out[0] = acc
    keep = 1.0 - alpha
    for t in range(1, x.shape[0]):
        acc = alpha * x[t] + keep * acc
        out[t] = acc
    return out


def window_features(x: FloatArray, spec: WindowSpec) -> FloatArray:
    """Causal features of one unit's channels `x` (rows in time order, n x c)."""
    if x.ndim != 2:
        raise DataFormatError(f"channels must be 2-D (rows x channels), got {x.shape}")
    n, c = x.shape
    zero = np.zeros((1, c))
    s = np.arange(n, dtype=np.float64)[:, None]
    cs = np.vstack((zero, np.cumsum(x, axis=0)))
    cs2 = np.vstack((zero, np.cumsum(x * x, axis=0)))
    css = np.vstack((zero, np.cumsum(s * x, axis=0)))
    cs_t = np.concatenate(([0.0], np.cumsum(s[:, 0])))
    cs_t2 = np.concatenate(([0.0], np.cumsum(s[:, 0] ** 2)))

    per_channel: list[list[FloatArray]] = [[x[:, j]] for j in range(c)]
    for w in spec.mean_windows:
        total, m = _window_sums(cs, w)
        mean = total / m[:, None]
        for j in range(c):
            per_channel[j].append(mean[:, j])
    for w in spec.std_windows:
        total, m = _window_sums(cs, w)
        total2, _ = _window_sums(cs2, w)
        var = np.maximum(total2 / m[:, None] - (total / m[:, None]) ** 2, 0.0)
        sd = np.sqrt(var)
        for j in range(c):
            per_channel[j].append(sd[:, j])
    for w in spec.slope_windows:
        sx, m = _window_sums(cs, w)
        sxy, _ = _window_sums(css, w)
        st, _ = _window_sums(cs_t[:, None], w)
        st2, _ = _window_sums(cs_t2[:, None], w)
        denom = m[:, None] * st2 - st**2
        num = m[:, None] * sxy - st * sx
        slope = np.divide(num, denom, out=np.zeros_like(num), where=denom > _EPS)
        for j in range(c):
            per_channel[j].append(slope[:, j])
    slow: FloatArray | None = None
    for a in spec.ewm_alphas:
        e = ewm(x, a)
        if slow is None:
            slow = e
        for j in range(c):
            per_channel[j].append(e[:, j])
    if spec.baseline_rows > 0:
        b = np.minimum(np.arange(1, n + 1), spec.baseline_rows)
        baseline = cs[b] / b[:, None].astype(np.float64)
        level = slow if slow is not None else x
        drift = level - baseline
        for j in range(c):
            per_channel[j].append(drift[:, j])

    cols: list[FloatArray] = (
        [np.arange(1, n + 1, dtype=np.float64)] if spec.include_position else []
    )
    for j in range(c):
        cols.extend(per_channel[j])
    return np.column_stack(cols) if cols else np.zeros((n, 0))


def trajectory_features(
    traj: Trajectories, normaliser: SensorNormaliser, spec: WindowSpec
) -> FloatArray:
    """Features of every row of every unit (row order kept), shape (n_rows, n_features)."""
    channels = normaliser.channels(traj.settings, traj.sensors)
    n_feat = len(spec.feature_names(normaliser.channel_names))
    out = np.empty((traj.n_rows, n_feat))
    for _, s in traj.unit_slices():
        out[s] = window_features(channels[s], spec)
    return out


def last_row_index(traj: Trajectories) -> IntArray:
    """Index of the last row of each unit, in unit order."""
    return np.array([s.stop - 1 for _, s in traj.unit_slices()], dtype=np.int64)


def rul_targets(traj: Trajectories, cap: float | None) -> FloatArray:
    """Remaining cycles to the unit's last cycle, clipped at `cap` (piecewise-linear)."""
    out = np.empty(traj.n_rows, dtype=np.float64)
    for _, s in traj.unit_slices():
        c = traj.cycle[s]
        out[s] = (c[-1] - c).astype(np.float64)
    if cap is not None:
        np.minimum(out, cap, out=out)
    return out


BoolArray = npt.NDArray[np.bool_]
