"""Cross-validation of the RUL method by unit, evaluated like the test protocol.

Each validation unit is cut at random points (the unit's history ends there, as in a test
set cut before failure) and the model predicts the RUL at the cut. Cut points are drawn
with a fixed seed so that the true RUL at the cut is uniform in [1, max_eval_rul] with at
least `min_history` rows observed. Because features are causal, the prediction at a cut
equals the prediction on the trajectory truncated there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sklearn.model_selection import GroupKFold

from insights.maintenance.cmapss import FloatArray, IntArray, Trajectories
from insights.maintenance.errors import InsufficientDataError
from insights.maintenance.metrics import nasa_score, rmse


class RowPredictor(Protocol):
    """A fitted model that predicts RUL from the causal features of rows."""

    def features(self, traj: Trajectories) -> FloatArray: ...

    def predict_features(self, x: FloatArray) -> FloatArray: ...


Fit = Callable[[Trajectories], RowPredictor]


@dataclass(frozen=True, slots=True)
class CvResult:
    rmse: float  # against the true RUL clipped at the model's cap (the usual convention)
    rmse_raw: float  # against the unclipped true RUL
    nasa_score: float  # per repetition (one cut per unit), averaged over repetitions
    n_predictions: int
    fold_rmse: tuple[float, ...]
    predicted: FloatArray
    true: FloatArray
    repetition: IntArray


def sample_cuts(
    lifetimes: dict[int, int],
    *,
    cuts_per_unit: int,
    max_eval_rul: int,
    min_history: int,
    seed: int,
) -> dict[int, IntArray]:
    """True RUL at each cut, per unit; units too short for any cut get none."""
    rng = np.random.default_rng(seed)
    out: dict[int, IntArray] = {}
    for unit in sorted(lifetimes):
        life = lifetimes[unit]
        high = min(max_eval_rul, life - min_history)
        if high < 1:
            out[unit] = np.zeros(0, dtype=np.int64)
            continue
        out[unit] = rng.integers(1, high + 1, size=cuts_per_unit).astype(np.int64)
    return out


def cross_validate(
    traj: Trajectories,
    fit: Fit,
    *,
    cap: float,
    folds: int = 5,
    cuts_per_unit: int = 5,
    max_eval_rul: int = 150,
    min_history: int = 30,
    seed: int = 0,
) -> CvResult:
    units = np.array([u for u, _ in traj.unit_slices()], dtype=np.int64)
    if units.size < folds:
        raise InsufficientDataError(f"need at least {folds} units for {folds}-fold CV")
    lifetimes = traj.lifetimes()
    cuts = sample_cuts(
        lifetimes,
        cuts_per_unit=cuts_per_unit,
        max_eval_rul=max_eval_rul,
        min_history=min_history,
        seed=seed,
    )
    # Shuffle units into folds with the seed (GroupKFold alone balances by size only).
    order = np.random.default_rng(seed).permutation(units.size)
    preds: list[FloatArray] = []
    trues: list[FloatArray] = []
    reps: list[IntArray] = []
    fold_rmse: list[float] = []
    splitter = GroupKFold(n_splits=folds)
    for train_idx, val_idx in splitter.split(units[order], groups=units[order]):
        train_units = units[order][train_idx]
        val_units = units[order][val_idx]
        model = fit(traj.select_units(train_units))
        val = traj.select_units(val_units)
        x = model.features(val)
        rows: list[int] = []
        fold_true: list[int] = []
        fold_rep: list[int] = []
        for unit, s in val.unit_slices():
            cycles = val.cycle[s]
            for rep, rul in enumerate(cuts[unit]):
                target_cycle = lifetimes[unit] - int(rul)
                rows.append(s.start + int(np.searchsorted(cycles, target_cycle)))
                fold_true.append(int(rul))
                fold_rep.append(rep)
        if not rows:
            continue
        p = model.predict_features(x[np.array(rows)])
        t = np.array(fold_true, dtype=np.float64)
        preds.append(p)
        trues.append(t)
        reps.append(np.array(fold_rep, dtype=np.int64))
        fold_rmse.append(rmse(p, np.minimum(t, cap)))
    if not preds:
        raise InsufficientDataError(f"no unit is longer than min_history={min_history} rows")
    predicted = np.concatenate(preds)
    true = np.concatenate(trues)
    repetition = np.concatenate(reps)
    clipped = np.minimum(true, cap)
    per_rep = [
        nasa_score(predicted[repetition == r], clipped[repetition == r])
        for r in np.unique(repetition)
    ]
    return CvResult(
        rmse=rmse(predicted, clipped),
        rmse_raw=rmse(predicted, true),
        nasa_score=float(np.mean(per_rep)),
        n_predictions=int(predicted.size),
        fold_rmse=tuple(fold_rmse),
        predicted=predicted,
        true=true,
        repetition=repetition,
    )
